"""The task registry: what each spoken task asks, what it answers and how it is scored.

A [`Task`] has a pool of prompts (one is drawn per example), a target template and a metric. Prompts and targets
are `str.format` templates over the example's columns (after the data set's `columns` mapping) and its constant
`fields`, so `"Translate the audio into {language}."` reads `language` from a column or from `fields`. List values
are joined with the task's `separator`, dict values become `"key: value"` items.

Built-in tasks (SpeechVerse's task families): `asr`, `st` (speech translation), `intent`, `slots`, `keywords`,
`emotion`, `paralinguistic` (any speaker trait named by `attribute`) and `sqa` (spoken question answering).

New tasks, or changes to built-in ones, are plain YAML under `tasks:`; `base:` copies an existing task first:

```yaml
tasks:
  accent:
    base: paralinguistic
    prompts: ["Which accent does the speaker have?", "Name the speaker's accent."]
    target: "{accent}"
  asr:
    prompts: ["Transcribe the audio."]   # replaces the built-in pool
```
"""

import copy
import string
from dataclasses import dataclass, field, fields

import numpy as np

from .metrics import metric_path


@dataclass
class Task:
    """One spoken task.

    Args:
        name: the task's name, used in data set specs (`task: asr`) and in logs (`eval_asr_wer`).
        prompts: instruction templates; one is drawn per example.
        target: the answer template, e.g. `"{text}"`.
        metric: a shipped metric (`wer`, `bleu`, `classification`, `overlap_f1`) or a metric module folder.
        metric_options: keyword arguments of the metric (e.g. `{separator: ";"}`).
        metric_key: the metric's headline value (e.g. `wer`), shown in summaries.
        higher_is_better: direction of `metric_key`.
        separator: joins list and dict values in targets.
        kind: the built-in task it derives from (`asr` for transcription tasks: the CTC warm-up needs them).
        description: one line for summaries and docs.
    """

    name: str
    prompts: list[str]
    target: str
    metric: str
    metric_key: str
    metric_options: dict = field(default_factory=dict)
    higher_is_better: bool = True
    separator: str = ", "
    kind: str = ""
    description: str = ""

    def __post_init__(self):
        self.kind = self.kind or self.name
        if not self.prompts or not all(isinstance(prompt, str) and prompt.strip() for prompt in self.prompts):
            raise ValueError(f"Task {self.name!r} needs a non-empty list of prompts (`prompts: [...]`).")
        for template in [*self.prompts, self.target]:
            _placeholders(template, self.name)
        metric_path(self.metric)  # raises for an unknown metric

    @property
    def required_columns(self) -> list[str]:
        """Columns (or fields) every example must have: the audio and the prompts' and target's placeholders."""
        names = ["audio"]
        for template in [self.target, *self.prompts]:
            names += [name for name in _placeholders(template, self.name) if name not in names]
        return names

    def sample_prompt(self, values: dict, rng: np.random.Generator) -> str:
        """Draw one prompt from the pool and fill in its placeholders from `values`."""
        template = self.prompts[int(rng.integers(len(self.prompts)))]
        return self._fill(template, values)

    def format_target(self, values: dict) -> str:
        return self._fill(self.target, values).strip()

    def _fill(self, template: str, values: dict) -> str:
        names = _placeholders(template, self.name)
        return template.format(**{name: format_value(values[name], self.separator) for name in names})

    def score(self, predictions: list[str], references: list[str]) -> dict:
        """The task's metric on generated `predictions` against `references` (`evaluate` module, offline)."""
        from .metrics import compute_metric

        return compute_metric(self.metric, predictions, references, **self.metric_options)


def _placeholders(template: str, task: str) -> list[str]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ValueError(
            f"Task {task!r}: cannot parse template {template!r} ({error}); escape braces as {{{{ }}}}."
        ) from error
    names = [name for _, name, _, _ in parsed if name is not None]
    if any(not name or not name.isidentifier() for name in names):
        raise ValueError(f"Task {task!r}: template {template!r} needs named placeholders such as {{text}}.")
    return names


def format_value(value, separator: str = ", ") -> str:
    """A column value as text: lists joined by `separator`, dicts as `key: value` items, numbers as text."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return separator.join(f"{key}: {format_value(item, separator)}" for key, item in value.items())
    if isinstance(value, (list, tuple, np.ndarray)):
        return separator.join(format_value(item, separator) for item in value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


BUILTIN_TASKS = {
    "asr": Task(
        name="asr",
        description="speech recognition",
        prompts=[
            "Transcribe the audio.",
            "Write down what the speaker says.",
            "What is said in this recording? Write it down word for word.",
            "Please transcribe this speech.",
            "Convert the speech to text.",
            "Give a verbatim transcript of the audio.",
        ],
        target="{text}",
        metric="wer",
        metric_key="wer",
        higher_is_better=False,
    ),
    "st": Task(
        name="st",
        description="speech translation",
        prompts=[
            "Translate the audio into {language}.",
            "What does the speaker say? Answer in {language}.",
            "Listen to the recording and give its {language} translation.",
            "Translate this speech to {language}.",
        ],
        target="{translation}",
        metric="bleu",
        metric_key="bleu",
    ),
    "intent": Task(
        name="intent",
        description="intent classification",
        prompts=[
            "What is the intent of the speaker? Answer with the intent label only.",
            "Classify the intent of this utterance.",
            "Which intent does this request express? Give the label.",
        ],
        target="{intent}",
        metric="classification",
        metric_key="accuracy",
    ),
    "slots": Task(
        name="slots",
        description="slot filling",
        prompts=[
            "List the slots in this utterance as 'slot: value' pairs separated by semicolons.",
            "Extract the slot values from the request, as 'slot: value; slot: value'.",
            "Fill in the slots mentioned by the speaker ('slot: value', separated by ';').",
        ],
        target="{slots}",
        separator="; ",
        metric="overlap_f1",
        metric_options={"separator": ";"},
        metric_key="f1",
    ),
    "keywords": Task(
        name="keywords",
        description="keyword extraction",
        prompts=[
            "List the keywords of this recording, separated by commas.",
            "Which key words does the speaker use? Answer with a comma-separated list.",
            "Extract the main keywords from the speech.",
        ],
        target="{keywords}",
        metric="overlap_f1",
        metric_options={"separator": ","},
        metric_key="f1",
    ),
    "emotion": Task(
        name="emotion",
        description="emotion recognition",
        prompts=[
            "What emotion does the speaker express? Answer with one word.",
            "How does the speaker feel? Give the emotion label.",
            "Classify the emotion in this voice.",
        ],
        target="{label}",
        metric="classification",
        metric_key="macro_f1",
    ),
    "paralinguistic": Task(
        name="paralinguistic",
        description="speaker trait classification (set `attribute` in the data set's fields)",
        prompts=[
            "What is the speaker's {attribute}? Answer with the label only.",
            "Classify the {attribute} of the speaker.",
            "Listen to the voice and name the speaker's {attribute}.",
        ],
        target="{label}",
        metric="classification",
        metric_key="macro_f1",
    ),
    "sqa": Task(
        name="sqa",
        description="spoken question answering",
        prompts=[
            "{question}",
            "Answer the question about the recording: {question}",
            "Listen to the audio and answer briefly: {question}",
        ],
        target="{answer}",
        metric="overlap_f1",
        metric_key="f1",
    ),
}


def build_tasks(overrides: dict | None = None) -> dict[str, Task]:
    """The built-in tasks, updated and extended with the YAML `tasks:` section.

    Each entry may set any [`Task`] field; `base:` names the task it starts from (default: the built-in task of
    the same name, else none, in which case `prompts`, `target` and `metric` are required).
    """
    tasks = {name: copy.deepcopy(task) for name, task in BUILTIN_TASKS.items()}
    allowed = {f.name for f in fields(Task)} - {"name"}
    for name, settings in (overrides or {}).items():
        settings = dict(settings or {})
        unknown = set(settings) - allowed - {"base"}
        if unknown:
            raise ValueError(f"Task {name!r}: unknown keys {sorted(unknown)}; allowed keys are {sorted(allowed)}.")
        base_name = settings.pop("base", name if name in tasks else None)
        if base_name is not None and base_name not in tasks:
            raise ValueError(f"Task {name!r}: unknown `base` {base_name!r}; known tasks are {sorted(tasks)}.")
        values = {f.name: getattr(tasks[base_name], f.name) for f in fields(Task)} if base_name else {}
        values.update(settings, name=name)
        if base_name and "kind" not in settings:
            values["kind"] = tasks[base_name].kind
        missing = [key for key in ("prompts", "target", "metric", "metric_key") if key not in values]
        if missing:
            raise ValueError(f"Task {name!r} needs {missing} (or `base:` naming a task to start from).")
        tasks[name] = Task(**values)
    return tasks


def get_task(tasks: dict[str, Task], name: str) -> Task:
    """Look up a task by name with an error that lists the known ones."""
    if name not in tasks:
        raise ValueError(
            f"Unknown task {name!r}. Known tasks: {', '.join(sorted(tasks))}. Define it under `tasks:` in the YAML "
            f"(prompts, target, metric), e.g. `tasks: {{{name}: {{base: intent, target: '{{label}}'}}}}`."
        )
    return tasks[name]


__all__ = ["BUILTIN_TASKS", "Task", "build_tasks", "format_value", "get_task"]
