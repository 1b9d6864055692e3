"""Classify every image in a folder into a CSV file, using only the public API.

python samples/classify_folder_to_csv.py samples/images results.csv
"""

from __future__ import annotations

import argparse
import csv

import edgecnn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("output")
    parser.add_argument("--model", default=None, help="an edgecnn .onnx (default: bundled)")
    args = parser.parse_args()

    classifier = edgecnn.Classifier.load(args.model)
    with open(args.output, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "score", "error"])
        for result in classifier.classify(args.folder, batch_size=16):
            writer.writerow(
                [result.source, result.label or "", f"{result.score or 0:.4f}", result.error or ""]
            )
            print(result)


if __name__ == "__main__":
    main()
