#!/usr/bin/env bash
# Placeholder: public tokenizer test files are fetched here (see data/ tests).
mkdir -p "$1"
