"""EgoBench metrics as plain functions over lists / numpy arrays; scores are fractions in [0, 1].

choice.py     parse_choice, accuracy, choice_accuracy, egomcq_accuracy, bootstrap_ci
retrieval.py  average_precision, charades_map, epic_mir, epic_relevancy
text.py       exact_match, rouge_l, meteor, sentence_similarity, qaego4d_open
"""

from exo2ego_model.eval.choice import accuracy, bootstrap_ci, choice_accuracy, egomcq_accuracy, parse_choice
from exo2ego_model.eval.retrieval import average_precision, charades_map, epic_mir, epic_relevancy
from exo2ego_model.eval.text import exact_match, meteor, qaego4d_open, rouge_l, sentence_similarity

__all__ = [
    "accuracy",
    "average_precision",
    "bootstrap_ci",
    "charades_map",
    "choice_accuracy",
    "egomcq_accuracy",
    "epic_mir",
    "epic_relevancy",
    "exact_match",
    "meteor",
    "parse_choice",
    "qaego4d_open",
    "rouge_l",
    "sentence_similarity",
]
