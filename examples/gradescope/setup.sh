#!/usr/bin/env bash
# Gradescope runs this once, when it builds the autograder's image (Ubuntu): a Python with cnn-gradcheck
# in /autograder/venv. Put the cnn-gradcheck wheel in the zip beside this file (README.md: how to build it).
set -euo pipefail
apt-get update
apt-get install -y python3 python3-venv python3-pip
python3 -m venv /autograder/venv
/autograder/venv/bin/python -m pip install --upgrade pip
# PyTorch is the checker's exact oracle (optional: without it, finite differences judge alone); the CPU
# build is enough and much smaller than the default one.
/autograder/venv/bin/python -m pip install torch --index-url https://download.pytorch.org/whl/cpu
/autograder/venv/bin/python -m pip install /autograder/source/cnn_gradcheck-*.whl
