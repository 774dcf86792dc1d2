"""evalkit: what did this LoRA adapter change compared with its base model, and is the difference real?"""

__version__ = "0.1.0"
