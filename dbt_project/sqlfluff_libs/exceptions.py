"""`exceptions`: compile errors are dbt's to raise; the linter renders on."""


def raise_compiler_error(message):
    return ""
