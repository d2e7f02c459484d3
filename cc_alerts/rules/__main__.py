"""`python -m cc_alerts.rules`: the rules table, as the README shows it."""

from cc_alerts.rules import markdown_table

print(markdown_table())
