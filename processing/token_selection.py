"""Which audio tokens a text LM should learn: Lasso selection over bags of speech units (scikit-learn).

`SpeechTokenSelector.fit(audio_tokens, labels, texts=None)`:
bag of audio tokens (optionally joined with a bag of text words) -> TF-IDF -> max-abs scaling -> L1 logistic
regression (saga, class-balanced, `C` given or cross-validated) -> keep the audio tokens whose weight is above the
mean weight of all features (scikit-learn's `SelectFromModel(threshold="mean")`), or the `top_k` heaviest. Matrices
stay sparse from the bag to the classifier, so 10,000 clips over an 8,192-token vocabulary take seconds.

Baselines with the same interface: `method="random"` keeps `num_tokens` tokens drawn with `seed` from the tokens
seen in the training clips, `method="all"` keeps every token, `method="none"` keeps none (text only).

The kept vocabulary is stored as JSON (`audio_vocabulary.json`) with each token's weight. scikit-learn is only
needed to fit; loading and filtering need nothing but the standard library and numpy. Flat imports only: this file
travels to Hub repositories beside the processor.
"""

import json
import os
import warnings
from collections.abc import Sequence

import numpy as np

SELECTION_FILE = "audio_vocabulary.json"
METHODS = ("lasso", "random", "all", "none")


def bag_of_tokens(sequences: Sequence, vocabulary: Sequence[str] | dict):
    """Count matrix (clips x vocabulary) as a scipy CSR matrix.

    `sequences` hold, per clip, vocabulary indices (int arrays, fast path) or token strings; tokens outside the
    vocabulary raise an error naming them.
    """
    from scipy import sparse

    index = vocabulary if isinstance(vocabulary, dict) else {token: i for i, token in enumerate(vocabulary)}
    rows = [_as_indices(sequence, index) for sequence in sequences]
    lengths = np.fromiter((len(row) for row in rows), dtype=np.int64, count=len(rows))
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    indices = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= len(index)):
        raise ValueError(f"Audio token indices must lie in [0, {len(index)}); got {indices.min()}..{indices.max()}.")
    # int32 indices spare scipy a checked down-cast of 10^7-10^8 entries (seconds on a busy CPU).
    index_dtype = np.int32 if indptr[-1] < np.iinfo(np.int32).max else np.int64
    counts = sparse.csr_matrix(
        (np.ones(indices.size, dtype=np.float64), indices.astype(index_dtype), indptr.astype(index_dtype)),
        shape=(len(rows), len(index)),
    )
    counts.sum_duplicates()  # repeated tokens in a clip -> one entry with their count
    return counts


def _as_indices(sequence, index: dict) -> np.ndarray:
    if isinstance(sequence, np.ndarray) and sequence.dtype.kind in "iu":
        return sequence.astype(np.int64, copy=False)
    sequence = list(sequence)
    if sequence and not isinstance(sequence[0], str):
        return np.asarray(sequence, dtype=np.int64)
    try:
        return np.fromiter((index[token] for token in sequence), dtype=np.int64, count=len(sequence))
    except KeyError as error:
        raise ValueError(f"Audio token {error.args[0]!r} is not in the selector's vocabulary.") from None


def _l1_logistic_regression(C: float, max_iter: int, tol: float, seed: int):
    """L1 logistic regression with saga, class-balanced; `penalty` is spelled `l1_ratio=1` from scikit-learn 1.8."""
    import sklearn
    from sklearn.linear_model import LogisticRegression

    major, minor = (int(part) for part in sklearn.__version__.split(".")[:2])
    penalty = {"l1_ratio": 1.0} if (major, minor) >= (1, 8) else {"penalty": "l1"}
    return LogisticRegression(
        **penalty, solver="saga", C=C, class_weight="balanced", max_iter=max_iter, tol=tol, random_state=seed
    )


class SpeechTokenSelector:
    """Selects the audio tokens worth adding to a text LM's vocabulary (see the module docstring).

    Args:
        vocabulary: every audio token, in vocabulary-index order (e.g. `SpeechUnitTokenizer.vocabulary`).
        method: `"lasso"`, `"random"`, `"all"` or `"none"`.
        C: inverse L1 strength of the logistic regression (the recipe uses 0.0025-0.03).
        Cs: if given, `C` is chosen among these by stratified `cv`-fold cross-validation of macro-F1.
        top_k: keep the `top_k` heaviest audio tokens (non-zero weights only) instead of those above the mean.
        use_text: join a bag of text words (`texts` in `fit`) to the bag of audio tokens.
        num_tokens: for `method="random"`, how many tokens to draw.
        seed: random state of saga, of the cross-validation folds and of the random draw.
    """

    def __init__(
        self,
        vocabulary: Sequence[str],
        method: str = "lasso",
        C: float = 0.01,
        Cs: Sequence[float] | None = None,
        cv: int = 5,
        top_k: int | None = None,
        use_text: bool = False,
        num_tokens: int | None = None,
        max_iter: int = 1000,
        tol: float = 1e-3,
        seed: int = 0,
    ):
        if method not in METHODS:
            raise ValueError(f"`method` must be one of {METHODS}, got {method!r}.")
        if method == "random" and (num_tokens is None or num_tokens < 1):
            raise ValueError("`method='random'` needs `num_tokens` >= 1 (e.g. the size of a Lasso selection).")
        self.vocabulary = list(vocabulary)
        self.index = {token: i for i, token in enumerate(self.vocabulary)}
        if len(self.index) != len(self.vocabulary):
            raise ValueError("The audio vocabulary contains duplicate tokens.")
        self.method, self.C, self.Cs, self.cv, self.top_k = method, C, Cs, cv, top_k
        self.use_text, self.num_tokens = use_text, num_tokens
        self.max_iter, self.tol, self.seed = max_iter, tol, seed
        self.kept_tokens: list[str] | None = None
        self.weights: dict[str, float] = {}
        self.report: dict = {}

    # ------------------------------------------------------------------------------------------------- fit
    def fit(self, audio_tokens: Sequence, labels: Sequence, texts: Sequence[str] | None = None):
        """Select from the training clips' audio tokens (ids or strings per clip) and their labels."""
        if self.method == "none":
            return self._keep([], {})
        if self.method == "all":
            return self._keep(self.vocabulary, {})
        counts = bag_of_tokens(audio_tokens, self.index)
        if len(labels) != counts.shape[0]:
            raise ValueError(f"Got {counts.shape[0]} clips but {len(labels)} labels.")
        if self.method == "random":
            return self._fit_random(counts)
        return self._fit_lasso(counts, np.asarray(labels), texts)

    def _fit_random(self, counts) -> "SpeechTokenSelector":
        seen = np.flatnonzero(np.asarray(counts.sum(axis=0)).ravel() > 0)
        if self.num_tokens > len(seen):
            raise ValueError(f"Cannot draw {self.num_tokens} tokens: only {len(seen)} occur in the training clips.")
        chosen = np.sort(np.random.default_rng(self.seed).choice(seen, self.num_tokens, replace=False))
        self.report = {"seen_tokens": int(len(seen))}
        return self._keep([self.vocabulary[i] for i in chosen], {})

    def _fit_lasso(self, counts, labels: np.ndarray, texts) -> "SpeechTokenSelector":
        from scipy import sparse
        from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
        from sklearn.feature_selection import SelectFromModel
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import MaxAbsScaler

        features, num_audio = counts, counts.shape[1]
        if self.use_text:
            if texts is None or len(texts) != counts.shape[0]:
                raise ValueError("`use_text=True` needs one text per clip in `fit(..., texts=...)`.")
            words = CountVectorizer().fit_transform(texts)
            features = sparse.hstack([counts, words], format="csr")
        C, cv_scores = self._cross_validated_C(features, labels) if self.Cs else (self.C, None)
        pipeline = make_pipeline(
            TfidfTransformer(), MaxAbsScaler(), _l1_logistic_regression(C, self.max_iter, self.tol, self.seed)
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*max_iter was reached.*")
            pipeline.fit(features, labels)
        classifier = pipeline[-1]
        # One weight per feature: |coef| for two classes, the L1 norm over classes otherwise (as SelectFromModel).
        importance = np.abs(classifier.coef_).sum(axis=0)[:num_audio]
        if self.top_k is not None:
            order = np.argsort(-importance, kind="stable")[: self.top_k]
            kept = np.sort(order[importance[order] > 0])
        else:
            support = SelectFromModel(classifier, prefit=True, threshold="mean").get_support()
            # With every weight at zero the mean is zero too and would keep everything: keep only weighted tokens.
            kept = np.flatnonzero(support[:num_audio] & (importance > 0))
        signed = classifier.coef_[0] if classifier.coef_.shape[0] == 1 else None
        weights = {self.vocabulary[i]: float(signed[i]) if signed is not None else float(importance[i]) for i in kept}
        self.report = {
            "C": float(C),
            "nonzero_audio_weights": int((importance > 0).sum()),
            "classes": [_plain(label) for label in classifier.classes_],
        }
        if cv_scores is not None:
            self.report["cv_macro_f1"] = cv_scores
        return self._keep([self.vocabulary[i] for i in kept], weights)

    def _cross_validated_C(self, features, labels: np.ndarray) -> tuple[float, dict[str, float]]:
        """The `C` among `Cs` with the best mean macro-F1 over stratified folds, and every `C`'s score."""
        from sklearn.feature_extraction.text import TfidfTransformer
        from sklearn.model_selection import GridSearchCV, StratifiedKFold
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import MaxAbsScaler

        pipeline = Pipeline(
            [
                ("tfidf", TfidfTransformer()),
                ("scale", MaxAbsScaler()),
                ("lasso", _l1_logistic_regression(self.C, self.max_iter, self.tol, self.seed)),
            ]
        )
        folds = StratifiedKFold(n_splits=self.cv, shuffle=True, random_state=self.seed)
        search = GridSearchCV(pipeline, {"lasso__C": list(self.Cs)}, scoring="f1_macro", cv=folds)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*max_iter was reached.*")
            search.fit(features, labels)
        scores = {str(c): float(score) for c, score in zip(self.Cs, search.cv_results_["mean_test_score"])}
        return float(search.best_params_["lasso__C"]), scores

    def _keep(self, tokens: Sequence[str], weights: dict[str, float]) -> "SpeechTokenSelector":
        self.kept_tokens = list(tokens)
        self.weights = dict(weights)
        self._kept = set(self.kept_tokens)
        return self

    # --------------------------------------------------------------------------------------------- apply
    def _check_fitted(self) -> None:
        if self.kept_tokens is None:
            raise ValueError("The selector is not fitted; call `fit(audio_tokens, labels)` or load a saved one.")

    def filter(self, tokens: Sequence[str]) -> list[str]:
        """Keep the selected tokens of one clip, in time order."""
        self._check_fitted()
        return [token for token in tokens if token in self._kept]

    # -------------------------------------------------------------------------------------------- saving
    def to_dict(self) -> dict:
        self._check_fitted()
        settings = {
            "method": self.method,
            "C": self.C,
            "Cs": list(self.Cs) if self.Cs else None,
            "cv": self.cv,
            "top_k": self.top_k,
            "use_text": self.use_text,
            "num_tokens": self.num_tokens,
            "max_iter": self.max_iter,
            "tol": self.tol,
            "seed": self.seed,
        }
        return {
            "settings": settings,
            "report": self.report,
            "vocabulary": self.vocabulary,
            "kept_tokens": [{"token": token, "weight": self.weights.get(token)} for token in self.kept_tokens],
        }

    def save_pretrained(self, save_directory: str | os.PathLike) -> str:
        """Write `audio_vocabulary.json` (the kept tokens with their weights) into `save_directory`."""
        os.makedirs(save_directory, exist_ok=True)
        path = os.path.join(save_directory, SELECTION_FILE)
        with open(path, "w", encoding="utf-8") as file:
            json.dump(self.to_dict(), file, indent=1)
        return path

    @classmethod
    def from_dict(cls, data: dict) -> "SpeechTokenSelector":
        selector = cls(data["vocabulary"], **data["settings"])
        selector.report = data.get("report", {})
        kept = data["kept_tokens"]
        weights = {item["token"]: item["weight"] for item in kept if item["weight"] is not None}
        return selector._keep([item["token"] for item in kept], weights)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> "SpeechTokenSelector":
        path = os.path.join(directory, SELECTION_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No {SELECTION_FILE} in {directory}; save a fitted selector there first.")
        with open(path, encoding="utf-8") as file:
            return cls.from_dict(json.load(file))


def _plain(value):
    return value.item() if hasattr(value, "item") else value


__all__ = ["SELECTION_FILE", "SpeechTokenSelector", "bag_of_tokens"]
