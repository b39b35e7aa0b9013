"""One RAG conversation the chat, limits and evaluate tests share: two documents, the question
that only the first answers, and the answer."""

DOC_A = "The Eiffel Tower stands in Paris. It was finished in 1889."
DOC_B = "The Colosseum stands in Rome. It held fifty thousand people."
QUESTION = "In which city is the Eiffel Tower?"
RAG = [
    {"role": "system", "content": "Answer the question from the documents."},
    {"role": "user", "content": f"Document A: {DOC_A}\nDocument B: {DOC_B}\nQuestion: {QUESTION}"},
]
SOURCES = [{"id": "A", "text": DOC_A}, {"id": "B", "text": DOC_B}]
ANSWER = "The Eiffel Tower is in Paris."
