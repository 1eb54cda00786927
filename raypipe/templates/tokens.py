"""Token-level constants shared by tokenization, batching, training and inference (one definition
each, so the tokenizer, the trainer and the inference engine never disagree)."""

# The label of a token that carries no loss (PyTorch cross-entropy's ignore_index).
IGNORE_INDEX = -100

# Embedding rows are padded to a multiple of this when special tokens are added (tensor-core
# friendly; vLLM and PEFT load the padded size from the adapter's config).
PAD_TO_MULTIPLE = 64
