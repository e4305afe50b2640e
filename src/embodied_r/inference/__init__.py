"""Use the trained model: one question about one video through the whole chain, the registered pyfunc, its card.

``Asker(params, root, "models:/embodied-r-lm@champion").ask(video, question, options)`` gives an :class:`Answer`
(``embodied-r ask`` prints it); :class:`~embodied_r.inference.pyfunc.EmbodiedRChain` is the same chain as the
registered MLflow model; :func:`model_card` writes a registered version's description.
"""

from embodied_r.inference.asker import Asker
from embodied_r.inference.chain import Answer, Chain, InferenceError, InferenceSettings

__all__ = ["Answer", "Asker", "Chain", "InferenceError", "InferenceSettings"]
