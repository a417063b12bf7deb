"""Export: the net in the IR, with its weights as arrays, into other frameworks' forms that
compute what Caffe computes (`onnx`, `pytorch`), each op's form in one registry per target.

The stage reads no Caffe and no weights file: it is handed the net and its parameter arrays (the
runtime reads .caffemodel files, folds BatchNorm when asked, and runs what this stage makes).
"""
