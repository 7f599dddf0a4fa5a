"""Prompts for the text-conditioned generators, and the guard against leaking labels through them.

``svd.prompt`` is a template rendered per image with :meth:`str.format`. The fields it may use
are the image's class: ``{class_name}``, ``{wnid}`` (the class id) and ``{label}`` (its index).
Every one of them *is* the label, so a clip generated from such a prompt carries its class into
the 3-D model's input. That is a legitimate augmentation on the training split, but on the test
split it scores the model on an input that was made knowing the answer. So a template with a
label field is refused for the ``test`` split unless ``svd.prompt_label_on_test`` is set, which
is logged as a warning on every run and recorded in ``generation.json`` (:func:`prompt_record`);
on the ``val`` split it only warns (model selection on such clips is optimistic).
"""

from __future__ import annotations

import logging
import string
from collections.abc import Sequence
from typing import Any

from gva.config import SvdConfig
from gva.data.arrays import IndexRow
from gva.errors import ConfigError
from gva.generate.base import Prompt

log = logging.getLogger(__name__)

#: The template fields a prompt may use; each of them identifies the image's class.
LABEL_FIELDS = ("class_name", "wnid", "label")


def template_fields(template: str, key: str = "svd.prompt") -> list[str]:
    """The ``{field}`` names in ``template``; an unknown field or a malformed template is a ConfigError."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ConfigError(f"{key}: malformed template {template!r}: {exc}") from None
    for name in names:
        if name not in LABEL_FIELDS:
            raise ConfigError(f"{key}: unknown field {{{name}}} in {template!r}; a prompt may use "
                              f"{', '.join('{' + f + '}' for f in LABEL_FIELDS)} (or none)")
    return list(dict.fromkeys(names))


def label_fields(cfg: SvdConfig) -> list[str]:
    """The label fields in ``svd.prompt`` and ``svd.negative_prompt``."""
    return list(dict.fromkeys(template_fields(cfg.prompt) + template_fields(cfg.negative_prompt,
                                                                           "svd.negative_prompt")))


def check_leakage(cfg: SvdConfig, splits: Sequence[str]) -> None:
    """Refuse label fields for the test split (unless overridden, loudly); warn for val."""
    fields = label_fields(cfg)
    if not fields:
        return
    named = ", ".join("{" + f + "}" for f in fields)
    if "test" in splits:
        if not cfg.prompt_label_on_test:
            raise ConfigError(
                f"svd.prompt uses {named}: rendered for the test split it puts each test image's label into "
                "the prompt its clip is generated from, so the 3-D model would be scored on inputs made knowing "
                "the answer. Use a prompt without label fields, or set svd.prompt_label_on_test: true to do it "
                "anyway (it is recorded in generation.json)")
        log.warning("LABEL LEAKAGE: svd.prompt uses %s and svd.prompt_label_on_test is true: test clips are "
                    "generated from prompts that contain their labels; test scores are not estimates of "
                    "accuracy on unlabelled images", named)
    if "val" in splits:
        log.warning("svd.prompt uses %s: val clips carry their labels, so model selection on val is optimistic",
                    named)


def render(template: str, row: IndexRow | None) -> str:
    """``template`` for one image (``row`` None: an image without a class, e.g. ``gva predict``)."""
    if row is None:
        if template_fields(template):
            raise ConfigError(f"svd.prompt {template!r} needs the image's class, which an unlabelled image "
                              "does not have")
        return template
    return template.format(class_name=row.class_name, wnid=row.wnid, label=row.label)


def render_prompts(cfg: SvdConfig, rows: Sequence[IndexRow]) -> list[Prompt]:
    """One :class:`Prompt` per row, after :func:`check_leakage` on the rows' splits."""
    check_leakage(cfg, sorted({r.split for r in rows}))
    return [Prompt(render(cfg.prompt, r), render(cfg.negative_prompt, r)) for r in rows]


def prompt_record(cfg: SvdConfig, rows: Sequence[IndexRow], prompts: Sequence[Prompt]) -> dict[str, Any]:
    """What generation.json records: the templates, whether labels entered the prompts (and the
    test split's), and the distinct prompts used per split."""
    by_split: dict[str, set[str]] = {}
    negative_by_split: dict[str, set[str]] = {}
    for r, p in zip(rows, prompts):
        by_split.setdefault(r.split, set()).add(p.text)
        negative_by_split.setdefault(r.split, set()).add(p.negative)
    fields = label_fields(cfg)
    return {"template": cfg.prompt, "negative_template": cfg.negative_prompt, "label_fields": fields,
            "label_on_test": bool(fields) and "test" in by_split,
            "by_split": {s: sorted(v) for s, v in sorted(by_split.items())},
            "negative_by_split": {s: sorted(v) for s, v in sorted(negative_by_split.items())}}
