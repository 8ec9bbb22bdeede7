"""The Streamlit page of ``python -m ser_gpu.app`` (run by ``streamlit run``; settings from the environment).

``SER_GPU_APP_CHECKPOINT`` names the checkpoint (a JSON list of paths: an ensemble, the members' softmax
averaged), ``SER_GPU_APP_DEVICE`` the device (default ``auto``). Everything computed here comes from
:mod:`ser_gpu.app.analysis` and :mod:`ser_gpu.model_card`; this file only lays out the page.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # run as a script: make sure the ser_gpu this page belongs to is the one imported
    sys.path.insert(0, _ROOT)

import altair as alt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from ser_gpu.app.analysis import UPLOAD_EXTENSIONS, Analyzer, plain  # noqa: E402
from ser_gpu.app.launch import CHECKPOINT_ENV, DEVICE_ENV, checkpoints_from_env  # noqa: E402
from ser_gpu.errors import AudioLoadError, CheckpointError, ParameterError  # noqa: E402

st.set_page_config(page_title="ser_gpu: speech emotion", layout="wide")

# The cached functions take the checkpoint paths as bytes (os.fsencode): Streamlit hashes a str argument
# as UTF-8, which a path whose bytes are not UTF-8 cannot be encoded to.
@st.cache_resource(show_spinner="Loading the model...")
def get_analyzer(checkpoints: tuple, device: str) -> Analyzer:
    from ser_gpu.predict import Predictor

    return Analyzer(Predictor([os.fsdecode(c) for c in checkpoints], device=device))


@st.cache_data(max_entries=4, show_spinner=False)
def analyse(_analyzer: Analyzer, checkpoints: tuple, data: bytes, name: str) -> dict:
    return _analyzer.analyse(data, name)


def show_card(card: dict, checkpoints: tuple, device) -> None:
    st.sidebar.header("Model")
    if len(checkpoints) == 1:
        st.sidebar.markdown(f"**Checkpoint** {plain(Path(checkpoints[0]).name)} on `{device}`")
    else:  # the card's corpus, epoch and scores are the first member's
        members = ", ".join(plain(f"{Path(c).parent.name}/{Path(c).name}") for c in checkpoints)
        st.sidebar.markdown(f"**Ensemble** of {len(checkpoints)} checkpoints (their softmax averaged) on "
                            f"`{device}`: {members}; below, the first one's training")
    st.sidebar.markdown(f"**Trained on** {plain(card['corpus'])}"
                        + (f" (split: {plain(str(card['split']))})" if card["split"] else ""))
    averaged = card.get("averaged_epochs")
    st.sidebar.markdown(f"**Epoch** {card['epoch']}" + (f" (the mean of the weights of epochs {averaged[0]}–"
                                                         f"{averaged[1]})" if averaged else ""))
    val, test = card["val"], card["test"]
    if "uar" in val:
        st.sidebar.markdown(f"**Validation UAR** {val['uar']:.3f} (accuracy {val.get('accuracy', float('nan')):.3f})")
    if test and "uar" in test:
        st.sidebar.markdown(f"**Test UAR** {test['uar']:.3f} (accuracy {test.get('accuracy', float('nan')):.3f}, "
                            f"held-out test set, from {plain(Path(test['source']).name)})")
    else:
        st.sidebar.markdown("**Test UAR** not stored (no result.json with a test set beside the checkpoint)")
    st.sidebar.markdown("**Labels** " + ", ".join(plain(label) for label in card["labels"]))


def probability_chart(result: dict) -> alt.Chart:
    """Bars of every label's probability in label order, the predicted one highlighted."""
    probs = pd.DataFrame({"emotion": list(result["probabilities"]),
                          "probability": list(result["probabilities"].values())})
    probs["predicted"] = probs["emotion"] == result["emotion"]
    return alt.Chart(probs).mark_bar().encode(
        x=alt.X("emotion:N", sort=list(probs["emotion"]), title=None),
        y=alt.Y("probability:Q", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("predicted:N", scale=alt.Scale(domain=[False, True], range=["#4c78a8", "#e45756"]),
                        legend=None),
        tooltip=["emotion", alt.Tooltip("probability:Q", format=".3f")],
    )


def timeline_chart(table: dict, labels) -> alt.Chart:
    """One line per label: each window's probability at the window's centre."""
    long = pd.DataFrame(table).melt(id_vars="seconds", var_name="emotion", value_name="probability")
    return alt.Chart(long).mark_line(point=True).encode(
        x=alt.X("seconds:Q", title="seconds (window centre)"),
        y=alt.Y("probability:Q", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("emotion:N", sort=list(labels), scale=alt.Scale(scheme="category10"),
                        legend=alt.Legend(orient="right", title=None)),
        tooltip=["emotion", alt.Tooltip("seconds:Q", format=".1f"), alt.Tooltip("probability:Q", format=".3f")],
    )


def draw_waveform(t, lo, hi, seconds: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 1.8), dpi=100)
    ax = fig.subplots()
    ax.fill_between(t, lo, hi, color="tab:blue", linewidth=0.5)
    ax.set_xlim(0, max(seconds, 1e-3))
    ax.set_xlabel("seconds")
    ax.set_ylabel("amplitude")
    fig.tight_layout()
    return fig


def draw_heatmap(features: np.ndarray, row_names, seconds: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 6.5), dpi=100)
    ax = fig.subplots()
    im = ax.imshow(np.clip(features, -3, 3), aspect="auto", origin="upper", cmap="magma", interpolation="nearest",
                   extent=(0, seconds, len(row_names) - 0.5, -0.5))
    ax.set_yticks(range(len(row_names)))
    ax.set_yticklabels(row_names, fontsize=5)
    ax.set_xlabel("seconds (after trimming silence)")
    fig.colorbar(im, ax=ax, label="standardised value", fraction=0.03)
    fig.tight_layout()
    return fig


def show_analysis(analyzer: Analyzer, out: dict, name: str) -> None:
    r = out["result"]
    st.metric("Predicted emotion", plain(r["emotion"]))  # rendered as Markdown too (the labels are RAVDESS's)
    st.caption(f"{plain(name)}: probability {r['probability']:.2f}, {r['seconds']:.1f} s scored in {r['windows']} "
               f"window(s) of {analyzer.predictor.window_seconds:g} s every {analyzer.predictor.hop_seconds:g} s")
    for message in r.get("warnings", []) or []:
        st.warning(plain(message))

    left, right = st.columns(2)
    with left:
        st.subheader("Probabilities")
        st.altair_chart(probability_chart(r), height=300)
    with right:
        table = analyzer.timeline_table(r)
        st.subheader("Over time")
        if table is None:
            st.caption("The file fits in one window: no timeline.")
        else:
            st.altair_chart(timeline_chart(table, analyzer.labels), height=300)

    st.subheader("Waveform")
    shown = out["display_seconds"]
    if shown < r["seconds"] - 1e-3:
        st.caption(f"The first {shown:.0f} s of {r['seconds']:.1f} s.")
    t, lo, hi = out["waveform"]
    st.pyplot(draw_waveform(t, lo, hi, shown), width="stretch")
    st.subheader("Feature rows")
    st.caption(f"The 68 rows the model reads, of the shown part after trimming silence "
               f"({out['feature_seconds']:.1f} s), each standardised over time.")
    if out["features"].shape[1]:
        st.pyplot(draw_heatmap(out["features"], out["row_names"], out["feature_seconds"]), width="stretch")
    else:
        st.caption("No frame is left after trimming silence.")


def run() -> None:
    st.title("Speech emotion recognition")
    checkpoints = tuple(checkpoints_from_env(os.environ.get(CHECKPOINT_ENV, "")))
    device = os.environ.get(DEVICE_ENV, "auto")
    if not checkpoints:
        st.error(f"No checkpoint: start the app with python -m ser_gpu.app --checkpoint best.pt "
                 f"(or set {CHECKPOINT_ENV}).")
        return
    try:
        analyzer = get_analyzer(tuple(map(os.fsencode, checkpoints)), device)
    except (CheckpointError, ParameterError) as exc:
        st.error(plain(f"The model cannot be loaded: {exc}"))
        return
    card = analyzer.predictor.card
    for key in ("warning", "noise_warning"):
        if card[key]:
            st.warning(plain(card[key][0].upper() + card[key][1:] + "."))
    show_card(card, checkpoints, analyzer.predictor.device)

    source = st.radio("Input", ["Upload a file", "Record from the microphone"], horizontal=True,
                      label_visibility="collapsed")
    if source == "Upload a file":
        upload = st.file_uploader("Audio or video file", type=list(UPLOAD_EXTENSIONS))
    else:
        upload = st.audio_input("Record your voice", sample_rate=None)
    if upload is None:
        st.info("Upload an audio or video file, or record from the microphone, to see its emotion.")
        return
    name = upload.name or "recording.wav"
    data = upload.getvalue()
    try:
        with st.spinner("Scoring..."):
            out = analyse(analyzer, tuple(map(os.fsencode, checkpoints)), data, name)
    except (AudioLoadError, ParameterError) as exc:
        st.error(plain(f"Could not read the file: {exc}"))
        return
    show_analysis(analyzer, out, name)


run()
