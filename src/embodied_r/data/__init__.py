"""Datasets: the embedded synthetic world and adapters for real benchmarks, all producing
:class:`~embodied_r.data.records.QuestionRecord` rows."""
