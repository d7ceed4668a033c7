"""Declarative data of nlconvert: the model zoo table and the Caffe2 blob-name rules."""
