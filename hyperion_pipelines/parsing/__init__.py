"""From bytes to text with structure: media-type sniffing and one parser per format."""
