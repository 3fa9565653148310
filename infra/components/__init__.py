"""One ComponentResource per building block, each paired with a pydantic `...Args` model.

Config sections inside the Args are `SkipValidation[...]`: the stack config was validated once,
as a whole, by `config.load()` before any resource was declared, and cross-field checks (prod
rules) only make sense there.
"""
