"""The Markdown table header every benchmark prints (the README pastes their output)."""


def header(*columns: str, text_columns: int = 0) -> None:
    """Print the header row; the first `text_columns` are left-aligned, the numbers right."""
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join(["---"] * text_columns + ["---:"] * (len(columns) - text_columns)) + "|")
