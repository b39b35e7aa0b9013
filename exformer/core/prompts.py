"""A causal LM's prompt as the model reads it: a plain text, or a conversation rendered by the
tokenizer's chat template, with every token traced back to the text it came from.

A conversation is rendered with the generation prompt (`apply_chat_template(...,
add_generation_prompt=True)`) and tokenized as one string without further special tokens,
which is what `apply_chat_template(tokenize=True)` returns (tests check the ids). Each message's
content is then found in the rendered string, so a token whose first visible character lies in
a content is that message's; every other token was added by the template (role markers,
separators, BOS, a default system prompt) and is marked `template`. A template token belongs to
the turn it opens: the tokens before message i's content are message i's; those after the last
content are the generation prompt's (message None, role "assistant").

>>> visible_start(" \\nab", 0, 4)
2
"""

from dataclasses import dataclass

from ..contract.errors import RequestError
from .loading import LoadedModel
from .tokens import encode


@dataclass
class Prompt:
    """Token ids and where each came from: (text index, start, end) in `texts`, or None."""

    ids: list[int]
    texts: list[str]  # [text], or each message's content
    spans: list[tuple[int, int, int] | None]  # per token: its text and characters there; None: special/template
    fixed: list[bool]  # per token: stays itself along a path by default (special or template tokens)
    special: list[bool]  # the tokenizer's special tokens
    roles: list[str] | None = None  # per message; None for a text prompt
    message_of: list[int | None] | None = None  # per token (messages only)
    template: list[bool] | None = None  # per token (messages only)
    n_tokens_input: int = 0
    n_tokens_dropped: int = 0

    def __len__(self):
        return len(self.ids)

    @property
    def truncated(self) -> bool:
        return self.n_tokens_dropped > 0


def visible_start(text: str, start: int, end: int) -> int:
    """The first non-whitespace character of text[start:end] (start if there is none)."""
    for k in range(start, end):
        if not text[k].isspace():
            return k
    return start


def text_prompt(loaded: LoadedModel, text: str) -> Prompt:
    """`text` as the tokenizer encodes it (special tokens added, truncated to max_tokens)."""
    encoded = encode(loaded, text)
    spans = [None if span is None else (0, span[0], span[1]) for span in encoded.offsets]
    return Prompt(
        ids=encoded.ids,
        texts=[text],
        spans=spans,
        fixed=list(encoded.special),
        special=list(encoded.special),
        n_tokens_input=encoded.n_tokens_input,
        n_tokens_dropped=encoded.n_tokens_dropped,
    )


def render(tokenizer, messages: list[dict]) -> tuple[str, list[int]]:
    """The conversation as the template writes it, and where each content starts in it: the
    template is rendered once more with a marker in place of each content, so a content that
    also occurs in template text (a default system prompt) is still found in its own turn."""
    template = lambda ms: tokenizer.apply_chat_template(ms, tokenize=False, add_generation_prompt=True)  # noqa: E731
    rendered = template(messages)
    markers = [f"\x00{k}\x00" for k in range(len(messages))]
    marked = template([{**m, "content": marker} for m, marker in zip(messages, markers)])
    starts, shift, rebuilt, position = [], 0, [], 0
    for marker, message in zip(markers, messages):
        found = marked.find(marker, position)
        if found < 0:
            break
        rebuilt += [marked[position:found], message["content"]]
        starts.append(found + shift)
        shift += len(message["content"]) - len(marker)
        position = found + len(marker)
    if len(starts) != len(messages) or "".join(rebuilt) + marked[position:] != rendered:
        raise RequestError(
            "messages",
            "this model's chat template rewrites the contents (they do not appear "
            "verbatim in the rendered prompt), so its tokens cannot be traced back",
        )
    return rendered, starts


def chat_prompt(loaded: LoadedModel, messages: list[dict]) -> Prompt:
    """A conversation through the chat template; a prompt over max_tokens is refused (a
    conversation cut short would explain another one)."""
    tokenizer = loaded.tokenizer
    rendered, starts = render(tokenizer, messages)
    encoded = tokenizer(rendered, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(encoded["input_ids"]), [tuple(o) for o in encoded["offset_mapping"]]
    if len(ids) > loaded.max_tokens:
        raise RequestError(
            "messages", f"render to {len(ids)} tokens, over the model's max_tokens ({loaded.max_tokens})", code=413
        )
    ends = [s + len(m["content"]) for s, m in zip(starts, messages)]
    specials = set(tokenizer.all_special_ids)
    spans: list[tuple[int, int, int] | None] = []
    message_of: list[int | None] = []
    template: list[bool] = []
    for a, b in offsets:
        first = visible_start(rendered, a, b)
        inside = next((k for k, (s, e) in enumerate(zip(starts, ends)) if s <= first < e and a < b), None)
        if inside is None:
            spans.append(None)
            template.append(True)
            message_of.append(next((k for k, s in enumerate(starts) if a < s), None))
        else:
            s, e = starts[inside], ends[inside]
            spans.append((inside, max(a, s) - s, min(b, e) - s))
            template.append(False)
            message_of.append(inside)
    return Prompt(
        ids=ids,
        texts=[m["content"] for m in messages],
        spans=spans,
        fixed=list(template),
        special=[i in specials for i in ids],
        roles=[m["role"] for m in messages],
        message_of=message_of,
        template=template,
        n_tokens_input=len(ids),
    )


def prompt_of(loaded: LoadedModel, request) -> Prompt:
    """The request's prompt: its `messages` through the chat template, or its `text`."""
    if request.messages is None:
        return text_prompt(loaded, request.text)
    return chat_prompt(loaded, [m.model_dump() for m in request.messages])


def prompt_ids(loaded: LoadedModel, request, texts: list[str]) -> list[int]:
    """The ids of the same prompt with other texts in place of `texts` (an ablation). A text
    with nothing left is the tokenizer's BOS token (else its EOS, GPT-2's document separator):
    a causal LM needs one token to predict the first target from."""
    if request.messages is None:
        if not texts[0].strip():
            tokenizer = loaded.tokenizer
            start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
            return [start] if start is not None else text_prompt(loaded, " ").ids
        return text_prompt(loaded, texts[0]).ids
    messages = [{"role": m.role, "content": t} for m, t in zip(request.messages, texts)]
    rendered = loaded.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return list(loaded.tokenizer(rendered, add_special_tokens=False)["input_ids"])
