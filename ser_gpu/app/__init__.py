"""The web app: upload or record a voice and see the predicted emotion (Streamlit, the ``app`` extra).

``python -m ser_gpu.app --checkpoint runs/demo/best.pt [--device auto|cpu|cuda] [--port 8501]``
checks the checkpoint and runs ``streamlit run`` on :mod:`ser_gpu.app.page` (bound to 127.0.0.1
unless ``--address``). The page's computations live in :mod:`ser_gpu.app.analysis` (no Streamlit);
the checkpoint's facts in :mod:`ser_gpu.model_card`.
"""

from .launch import CHECKPOINT_ENV, DEVICE_ENV, main

__all__ = ["main", "CHECKPOINT_ENV", "DEVICE_ENV"]
