"""Classify one image with the bundled model (or --model) and print the top-3 labels.

python samples/classify_one.py samples/images/star-1.jpg
"""

from __future__ import annotations

import argparse

import edgecnn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--model", default=None, help="an edgecnn .onnx (default: bundled)")
    args = parser.parse_args()

    classifier = edgecnn.Classifier.load(args.model)
    result = classifier.predict(args.image, top_k=3)
    for label, score in result.top:
        print(f"{label:<12} {score:6.1%}")
    print(f"({classifier.provider}, {sum(result.timings.values()):.1f} ms)")


if __name__ == "__main__":
    main()
