"""Evaluation of dense retrievers: exact ranks, LAReQA metrics (Mo./Cr./Mul., rank distance), paired tests."""
