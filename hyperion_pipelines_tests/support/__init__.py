"""What the tests share: servers they start, fixtures they build, the exact-index check."""
