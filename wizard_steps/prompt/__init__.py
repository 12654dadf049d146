"""The prompt template and the generation settings: presets, detection from the tokenizer,
rendering, and how a template differs from the folder's own."""
