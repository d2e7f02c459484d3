"""One client per polled source (HTTP, paging, budgets); the machinery they share is in resources.http."""
