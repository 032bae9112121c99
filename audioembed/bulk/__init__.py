"""Embedding folders of files from the command line: inputs, output writers, progress, the run loop."""
