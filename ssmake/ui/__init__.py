"""What a person sees: the live board and the plain and JSON reporters."""
