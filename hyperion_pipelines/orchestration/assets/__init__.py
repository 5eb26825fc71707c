"""One module per document asset of a pipeline; ``step`` holds what they share."""
