"""A built-in, RAVDESS-named synthetic speech corpus, so training runs with no dataset at hand.

Each clip is source-filter speech: a glottal pulse train (a Rosenberg pulse, differentiated for lip
radiation) with jitter, shimmer and aspiration noise, sent through a cascade of formant resonators
that changes vowel from syllable to syllable; syllables have consonant onsets (fricative or burst
noise), attacks, releases and pauses between them, over a low background noise floor. As in
RAVDESS, every actor says the same two "statements" (fixed vowel sequences of 4 and 3 syllables) in
every emotion, at normal and strong intensity.

The eight emotions differ in f0 level, range and contour, tempo, energy, spectral tilt, jitter,
shimmer and breathiness. The training features are standardised per clip and per row over time, and
their 93 ms STFT window blurs anything faster than about 10 Hz, so each emotion is also given
signatures at the syllable scale and slower, which survive both:

=========  ========================================================================================
neutral    medium, very regular tempo; steady energy; small rise-fall per syllable, mild declination
calm       slow; long regular pauses; flat f0; soft onsets; long final syllable; few consonants
happy      fast; long-short syllable swing with alternating stress; large rise-fall f0 arcs; bright
sad        slowest; long pauses; falling f0 and energy over the utterance; breathy, dark, jittery
angry      fast, no pauses; crescendo with random accents; sharp falls; effort-linked brightness, rough
fearful    fast, irregular; shaky syllable levels; whispered syllables; audible in-breaths in pauses;
           rising, trembling f0; high jitter and shimmer
disgust    slow; long, stressed first syllable; dipping f0 ending in creak (vocal fry); decaying energy
surprised  in-breath before a strongly stressed first syllable; steep rise within syllables and over
           the utterance
=========  ========================================================================================

Strong intensity is the table; normal intensity lies 10% of the way back towards neutral. Each
synthetic actor has a voice of its own (odd actors male, as in RAVDESS; base f0, formant scale,
tilt, breathiness, jitter, speaking rate), and every clip draws its own random variation of the
settings, consonants and accents, so a class is varied and held-out actors sound new.

Everything is deterministic from ``seed``: each clip's random stream is seeded by
``(seed, actor, emotion, intensity, statement, repetition)``, so a clip does not depend on the
corpus size or on the order of generation.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import soundfile as sf

from .._atomic import atomic_write, save_json
from .._validation import _describe, check_positive_int
from ..errors import ParameterError
from .ravdess import EMOTIONS

__all__ = ["make_corpus", "default_corpus_dir", "synthesize_clip", "MANIFEST_NAME"]

PathLike = Union[str, "os.PathLike[str]"]

#: File that marks a directory as a synthetic corpus of ours and records how it was made.
MANIFEST_NAME = "ser_gpu_synthetic.json"
# bump whenever the generated audio changes, so an old corpus on disk is regenerated (the manifest
# also records a hash of this file, which catches a change that forgot the bump)
_GENERATOR_VERSION = 2
_SUBTYPES = ("PCM_16", "FLOAT")

# F1-F4 (Hz) of a few vowels for an adult male voice (Peterson & Barney-like values).
_VOWELS = np.array([
    [730, 1090, 2440, 3400],  # a
    [270, 2290, 3010, 3500],  # i
    [300, 870, 2240, 3300],   # u
    [530, 1840, 2480, 3500],  # e
    [570, 840, 2410, 3300],   # o
    [660, 1720, 2410, 3400],  # ae
    [490, 1350, 1690, 3300],  # er
], dtype=np.float64)
_BANDWIDTHS = np.array([80.0, 100.0, 130.0, 180.0])
# The two RAVDESS statements ("Kids are talking by the door", "Dogs are sitting by the door") as
# fixed vowel sequences, shortened to 4 and 3 syllables to keep the corpus small: the words are the
# same in every emotion, so vowels carry no emotion cue.
_STATEMENT_VOWELS = {1: [1, 0, 4, 5], 2: [4, 5, 2]}

# Per-emotion settings at strong intensity. Normal intensity moves the graded ones 10% of the way
# back towards neutral. Keys:
#   f0: f0 level (x actor base)            trend: f0 change over the clip (semitones)
#   shape/range: per-syllable f0 shape and its excursion (semitones)
#   vib: (rate Hz, depth semitones) f0 tremor    trem: (rate Hz, depth) amplitude tremor
#   rate: syllables/s    rhythm: relative spread of syllable lengths    first: length of the first syllable (x)
#   pause: probability of a long pause after a syllable    plen: its length (s)
#   gasp: probability of an audible in-breath in a long pause    lead_gasp: ... before the first syllable
#   attack/release: syllable onset and offset times (s)    decay: within-syllable energy decay time (s)
#   etrend: energy change over the clip (dB)    sdb: accent size (dB)
#   stress: accent pattern (none, alternate, random, first syllable, unsteady = each syllable its own level)
#   dark: low-pass share of the source (spectral tilt)    effort: how much accents brighten the voice
#   breath: aspiration noise    jitter/shimmer: per-period f0/amplitude perturbation
#   creak: probability of a creaky (vocal fry) syllable end    cons: probability of a consonant onset
#   swing: long-short alternation of syllable lengths    last: length of the final syllable (x)
#   rough: every other glottal period weaker at high effort (subharmonic roughness)
#   whisper: probability that a syllable loses its voicing (voice breaks into a whisper)
_NEUTRAL = dict(f0=1.0, trend=-2.0, shape="hat", range=2.5, vib=(0.0, 0.0), trem=(0.0, 0.0), rate=4.3, rhythm=0.05,
                first=1.0, pause=0.08, plen=(0.10, 0.16), gasp=0.0, lead_gasp=0.0, attack=0.025, release=0.05,
                decay=0.0, etrend=0.0, stress="none", sdb=0.0, dark=0.5, effort=0.2, breath=0.05, jitter=0.005,
                shimmer=0.04, rough=0.0, creak=0.0, cons=0.8, swing=0.0, last=1.0, whisper=0.0)
_EMOTION_PARAMS: Dict[str, dict] = {
    "neutral": _NEUTRAL,
    "calm": {**_NEUTRAL, **dict(f0=0.95, trend=0.0, shape="flat", range=0.5, rate=2.5, rhythm=0.06, pause=0.7,
                                plen=(0.22, 0.32), attack=0.110, release=0.18, etrend=0.0, dark=0.7, effort=0.1,
                                breath=0.15, jitter=0.004, shimmer=0.03, cons=0.2, last=1.4)},
    "happy": {**_NEUTRAL, **dict(f0=1.25, trend=1.0, shape="hat", range=7.0, rate=5.0, rhythm=0.08, pause=0.03,
                                 plen=(0.08, 0.12), attack=0.012, release=0.04, etrend=0.0, stress="alternate",
                                 sdb=6.0, dark=0.2, effort=0.5, breath=0.04, cons=0.7, swing=0.35)},
    "sad": {**_NEUTRAL, **dict(f0=0.88, trend=-6.0, shape="fall", range=2.0, rate=2.35, rhythm=0.1, pause=0.5,
                               plen=(0.20, 0.32), attack=0.120, release=0.18, etrend=-10.0, dark=0.88, effort=0.0,
                               breath=0.4, jitter=0.012, shimmer=0.07, cons=0.3)},
    "angry": {**_NEUTRAL, **dict(f0=1.2, trend=-3.0, shape="sharpfall", range=5.0, rate=5.8, rhythm=0.15,
                                 pause=0.0, plen=(0.05, 0.08), attack=0.003, release=0.02, decay=0.08, etrend=8.0,
                                 stress="random", sdb=6.0, dark=0.03, effort=0.9, breath=0.02, jitter=0.008,
                                 shimmer=0.06, rough=0.5, cons=0.85)},
    "fearful": {**_NEUTRAL, **dict(f0=1.45, trend=3.0, shape="tremor", range=1.0, vib=(6.0, 2.0), trem=(6.0, 0.5),
                                   rate=6.5, rhythm=0.45, pause=0.5, plen=(0.12, 0.20), gasp=1.0, attack=0.015,
                                   release=0.03, etrend=-1.0, stress="unsteady", sdb=6.0, dark=0.45, breath=0.45,
                                   jitter=0.03, shimmer=0.12, whisper=0.5)},
    "disgust": {**_NEUTRAL, **dict(f0=0.9, trend=-3.0, shape="dip", range=4.0, rate=3.2, rhythm=0.2, first=1.7,
                                   pause=0.25, plen=(0.12, 0.22), attack=0.050, release=0.10, etrend=-6.0,
                                   stress="first", sdb=6.0, dark=0.6, effort=0.3, breath=0.1, jitter=0.015,
                                   shimmer=0.1, creak=1.0, cons=0.5)},
    "surprised": {**_NEUTRAL, **dict(f0=1.35, trend=9.0, shape="rise", range=7.0, rate=4.0, rhythm=0.2, pause=0.15,
                                     plen=(0.10, 0.20), lead_gasp=1.0, attack=0.005, release=0.05, etrend=-6.0,
                                     stress="first", sdb=8.0, dark=0.25, effort=0.4, breath=0.12, jitter=0.006,
                                     shimmer=0.05)},
}
# continuous settings that normal intensity pulls towards neutral
_GRADED = ("f0", "trend", "range", "rate", "rhythm", "first", "pause", "gasp", "lead_gasp", "attack", "release",
           "decay", "etrend", "sdb", "dark", "effort", "breath", "jitter", "shimmer", "rough", "creak",
           "cons", "swing", "last", "whisper")
_NORMAL_INTENSITY = 0.9


def default_corpus_dir() -> Path:
    """Where ``python -m ser_gpu.train`` keeps the built-in corpus: ``$SER_GPU_CACHE/synthetic``, else
    ``$XDG_CACHE_HOME/ser_gpu/synthetic``, else ``~/.cache/ser_gpu/synthetic``."""
    from .cache import _cache_root

    return _cache_root() / "synthetic"


# ----------------------------------------------------------------------------------------------
# voices and per-clip settings


def _voice(seed: int, actor: int) -> dict:
    rng = np.random.default_rng([seed, actor, 0x5E12])
    male = actor % 2 == 1  # RAVDESS: odd actors are male
    return dict(
        f0=rng.uniform(95, 135) if male else rng.uniform(175, 235),
        formants=(rng.uniform(0.92, 1.02) if male else rng.uniform(1.08, 1.2)) * rng.uniform(0.97, 1.03, 4),
        dark=rng.uniform(-0.12, 0.12),
        breath=rng.uniform(0.0, 0.06),
        rate=rng.uniform(0.9, 1.1),
        jitter=rng.uniform(0.0, 0.004),
        oq=rng.uniform(0.5, 0.65),
    )


def _clip_settings(emotion: str, intensity: int, rng: np.random.Generator) -> dict:
    p = dict(_EMOTION_PARAMS[emotion])
    k = 1.0 if intensity == 2 else _NORMAL_INTENSITY
    base = _EMOTION_PARAMS["neutral"]
    for key in _GRADED:
        p[key] = base[key] + k * (p[key] - base[key])
    p["vib"] = (p["vib"][0], p["vib"][1] * k)
    p["trem"] = (p["trem"][0], p["trem"][1] * k)
    # every clip varies: multiplicative spread on scales, additive on signed quantities
    for key in ("range", "attack", "release", "breath", "jitter", "shimmer", "sdb"):
        p[key] = p[key] * float(np.exp(rng.normal(0.0, 0.15)))
    p["rate"] *= float(np.exp(rng.normal(0.0, 0.1)))
    p["f0"] *= float(np.exp(rng.normal(0.0, 0.05)))
    p["trend"] += float(rng.normal(0.0, 0.8))
    p["etrend"] += float(rng.normal(0.0, 1.5))
    p["dark"] = float(np.clip(p["dark"] + rng.normal(0.0, 0.06), 0.0, 0.95))
    p["vib"] = (p["vib"][0] * float(np.exp(rng.normal(0.0, 0.08))), p["vib"][1] * float(np.exp(rng.normal(0, 0.15))))
    p["trem"] = (p["trem"][0] * float(np.exp(rng.normal(0.0, 0.08))), p["trem"][1])
    return p


# ----------------------------------------------------------------------------------------------
# signal pieces (all vectorised over samples)


def _syllable_plan(p: dict, voice: dict, n_syl: int, lead: int, sr: float, rng):
    """Syllables ``(consonant_start, nucleus_start, nucleus_end)`` and in-breaths ``(start, end)``, in samples."""
    plan, gasps = [], []
    t = lead
    if rng.random() < p["lead_gasp"]:
        g = int(sr * rng.uniform(0.10, 0.16))
        gasps.append((t, t + g))
        t += g + int(sr * rng.uniform(0.03, 0.06))
    period = 1.0 / (p["rate"] * voice["rate"])
    for i in range(n_syl):
        cons = int(sr * rng.uniform(0.03, 0.07)) if i and rng.random() < p["cons"] else 0
        dur = period * 0.72 * float(np.clip(np.exp(rng.normal(0.0, p["rhythm"])), 0.45, 2.2))
        if i == 0:
            dur *= p["first"]
        if i == n_syl - 1:
            dur *= p["last"]
        dur *= 1.0 + p["swing"] * (1.0 if i % 2 == 0 else -1.0)  # long-short alternation
        n0 = t + cons
        n1 = n0 + max(int(sr * dur), int(0.05 * sr))
        plan.append((t, n0, n1))
        if i == n_syl - 1:
            break
        gap = period * 0.28 * float(np.exp(rng.normal(0.0, p["rhythm"] * 0.5)))
        if rng.random() < p["pause"]:
            long_gap = rng.uniform(*p["plen"])
            if rng.random() < p["gasp"]:
                g = int(sr * min(0.8 * long_gap, 0.12))
                g0 = n1 + int(sr * (gap + 0.5 * long_gap)) - g // 2
                gasps.append((g0, g0 + g))
            gap += long_gap
        t = n1 + int(sr * gap)
    return plan, gasps


def _resonator_sos(freqs: np.ndarray, bws: np.ndarray, sr: float) -> np.ndarray:
    """Cascade of two-pole resonators (Klatt), unit gain at DC, as second-order sections."""
    keep = freqs < 0.45 * sr
    freqs, bws = freqs[keep], bws[keep]
    r = np.exp(-np.pi * bws / sr)
    c = 2.0 * r * np.cos(2.0 * np.pi * freqs / sr)
    sos = np.zeros((len(freqs), 6))
    sos[:, 0] = 1.0 - c + r * r
    sos[:, 3] = 1.0
    sos[:, 4] = -c
    sos[:, 5] = r * r
    return sos


def _semitone_shape(shape: str, u: np.ndarray) -> np.ndarray:
    """Per-syllable f0 movement (in units of the syllable's range) over its relative time ``u``."""
    if shape == "hat":
        return np.sin(np.pi * u) - 0.5
    if shape == "flat":
        return 0.3 * np.sin(2 * np.pi * u)
    if shape == "fall":
        return 0.5 - u
    if shape == "rise":
        return u ** 1.5 - 0.4
    if shape == "sharpfall":
        return np.exp(-5.0 * u) - 0.4
    if shape == "dip":
        return 0.5 - np.sin(np.pi * u)
    if shape == "tremor":
        return 0.5 * (0.5 - u)
    raise AssertionError(shape)


@functools.lru_cache(maxsize=8)
def _fricative_filters(sr: float) -> Tuple[np.ndarray, ...]:
    """The four fricative band-pass filters, shared by every clip (never modified: sosfilt reads them):
    designed once per sample rate, not per clip (designing them was 13 % of the corpus's synthesis)."""
    from scipy.signal import butter

    nyq = 0.5 * sr
    bands = [(3800, 8000), (2300, 5000), (1200, 7000), (500, 3500)]  # s, sh, f, h/stop-burst
    sos = []
    for lo, hi in bands:
        lo, hi = min(lo, 0.8 * nyq), min(hi, 0.95 * nyq)
        sos.append(butter(2, [lo / nyq, hi / nyq], btype="band", output="sos"))
    return tuple(sos)


def synthesize_clip(
    *,
    seed: int,
    actor: int,
    emotion: int,
    intensity: int = 1,
    statement: int = 1,
    repetition: int = 1,
    sr: float = 22050,
) -> np.ndarray:
    """One synthetic utterance as a float32 numpy waveform ``[shape=(time,)]`` in [-1, 1].

    Args:
        seed (int): corpus seed; with the other fields it fixes every random choice of the clip.
        actor (int): actor number (>= 1; odd male, even female), sets the voice.
        emotion (int): RAVDESS emotion code 1-8 (``EMOTIONS[emotion - 1]``).
        intensity (int, default 1): 1 normal or 2 strong (strong exaggerates the emotion).
        statement (int, default 1): 1 or 2, the vowel sequence (the "words").
        repetition (int, default 1): 1 or 2; another take with fresh random variation.
        sr (float, default 22050): sample rate (Hz).

    Returns:
        float32 waveform.
    """
    for name, value in (("seed", seed), ("actor", actor), ("emotion", emotion), ("intensity", intensity),
                        ("statement", statement), ("repetition", repetition)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ParameterError(f"{name} must be a non-negative integer, got {_describe(value)}")
    if not 1 <= emotion <= len(EMOTIONS):
        raise ParameterError(f"emotion must be a RAVDESS emotion code in 1-8, got {emotion!r}")
    if isinstance(sr, bool) or not isinstance(sr, (int, float)) or not sr >= 8000:
        raise ParameterError(f"sr must be at least 8000 Hz, got {_describe(sr)}")
    from scipy.signal import lfilter, sosfilt  # here: importing scipy.signal costs every command ~1 s

    name = EMOTIONS[emotion - 1]
    rng = np.random.default_rng([seed, actor, emotion, intensity, statement, repetition])
    voice = _voice(seed, actor)
    p = _clip_settings(name, intensity, rng)
    # RAVDESS speakers say the same statement in every emotion: a fixed number of syllables, so
    # the clip's length follows from the tempo (slow, sad speech gives longer clips)
    n_syl = len(_STATEMENT_VOWELS.get(statement, _STATEMENT_VOWELS[1]))
    lead, tail = int(sr * rng.uniform(0.06, 0.12)), int(sr * rng.uniform(0.06, 0.12))
    plan, gasps = _syllable_plan(p, voice, n_syl, lead, sr, rng)
    n = plan[-1][2] + tail
    t = np.arange(n) / sr

    # --- control signals: f0 (semitones re base), energy envelope, creak, consonant noise -----------
    st = np.zeros(n)
    env = np.zeros(n)
    creak = np.zeros(n)
    whisper = np.zeros(n)
    noise = np.zeros(n)  # consonants and in-breaths, added after the vocal tract
    span = max(plan[-1][2] - plan[0][1], 1)
    n_syl = len(plan)
    if p["stress"] == "alternate":
        accents = np.where(np.arange(n_syl) % 2 == int(rng.integers(2)), 1.0, 0.0)
    elif p["stress"] == "random":
        accents = (rng.random(n_syl) < 0.45).astype(float)
        accents[int(rng.integers(n_syl))] = 1.0
    elif p["stress"] == "unsteady":  # each syllable at its own level: a shaky voice
        accents = rng.uniform(-1.0, 1.0, n_syl)
    elif p["stress"] == "first":
        accents = np.zeros(n_syl)
        accents[0] = 1.0
    else:
        accents = np.zeros(n_syl)
    accents_db = accents * p["sdb"] + rng.normal(0.0, 1.0, n_syl)
    fric = _fricative_filters(sr)
    vowel_seq = _STATEMENT_VOWELS.get(statement, _STATEMENT_VOWELS[1])
    segments = []  # (start, end, vowel formants) for the formant filter
    for i, (c0, n0, n1) in enumerate(plan):
        L = n1 - n0
        u = np.arange(L) / max(L - 1, 1)
        st[n0:n1] = p["range"] * _semitone_shape(p["shape"], u) + accents[i] * p["range"] * 0.3
        tt = np.arange(L) / sr
        a = 1.0 - np.exp(-tt / max(p["attack"], 1e-3))
        rel = int(min(p["release"] * sr, 0.6 * L))
        if rel > 1:
            a[L - rel:] *= 0.5 * (1.0 + np.cos(np.pi * np.arange(1, rel + 1) / rel))
        if p["decay"] > 0:
            a *= 0.35 + 0.65 * np.exp(-tt / p["decay"])
        env[n0:n1] = a * 10.0 ** (accents_db[i] / 20.0)
        if rng.random() < p["creak"]:
            k = int(rng.uniform(0.35, 0.55) * L)
            creak[n1 - k:n1] = np.linspace(0.0, 1.0, k) ** 0.5
        if i and rng.random() < p["whisper"]:
            whisper[c0:n1] = 1.0
        if c0 < n0:
            kind = int(rng.integers(len(fric)))
            burst = rng.standard_normal(n0 - c0)
            ce = np.hanning(n0 - c0) if kind < 3 else np.exp(-np.arange(n0 - c0) / (0.01 * sr))
            noise[c0:n0] = sosfilt(fric[kind], burst) * ce * 0.12 * 10.0 ** (accents_db[i] / 40.0)
        vowel = _VOWELS[vowel_seq[i % len(vowel_seq)]]
        nxt = plan[i + 1][0] if i + 1 < n_syl else n
        segments.append((c0 if i else 0, nxt, vowel))
    for g0, g1 in gasps:  # audible in-breaths: breathy noise through an open, neutral tract
        g = g1 - g0
        noise[g0:g1] += sosfilt(fric[3], rng.standard_normal(g)) * np.hanning(g) ** 0.5 * rng.uniform(1.0, 1.4)
    # clip-level contours: f0 trend and energy trend over the speech span
    rel_t = np.clip((np.arange(n) - plan[0][1]) / span, 0.0, 1.0)
    st += p["trend"] * (rel_t - 0.5)
    if p["vib"][1] > 0:
        st += p["vib"][1] * np.sin(2 * np.pi * p["vib"][0] * t + rng.uniform(0, 2 * np.pi))
    st += np.cumsum(rng.normal(0.0, 0.02, n)) * 0.02  # slow wander
    env *= 10.0 ** (p["etrend"] * (rel_t - 0.5) / 20.0)
    if p["trem"][1] > 0:
        env *= 1.0 + p["trem"][1] * np.sin(2 * np.pi * p["trem"][0] * t + rng.uniform(0, 2 * np.pi))
    effort = np.clip(env / max(env.max(), 1e-9), 0.0, 1.0)

    # --- glottal source: jittered, shimmered Rosenberg pulses ---------------------------------------
    f0 = voice["f0"] * p["f0"] * 2.0 ** (st / 12.0) * (1.0 - 0.45 * creak)
    phase0 = np.cumsum(f0 / sr)
    n_periods = int(phase0[-1]) + 2
    jit = 1.0 + (p["jitter"] + voice["jitter"]) * rng.standard_normal(n_periods)
    jit_creak = 1.0 + 0.12 * rng.standard_normal(n_periods)
    k0 = phase0.astype(np.int64)
    f0 = f0 * jit[k0] * (1.0 + creak * (jit_creak[k0] - 1.0))
    phase = np.cumsum(f0 / sr)
    k = phase.astype(np.int64)
    frac = phase - k
    z = rng.standard_normal(int(k[-1]) + 2)[k]  # one amplitude draw per period
    shim = np.exp((p["shimmer"] + 0.3 * creak) * z)
    shim *= 1.0 - p["rough"] * (k % 2) * effort  # roughness: every other period weaker (subharmonics)
    oq = np.clip(voice["oq"] + 0.2 * (1 - effort) * p["dark"] - 0.1 * effort * p["effort"], 0.3, 0.85)
    rise, fall = 0.65 * oq, 0.35 * oq
    pulse = np.where(frac < rise, 0.5 * (1 - np.cos(np.pi * frac / rise)),
                     np.where(frac < rise + fall, np.cos(0.5 * np.pi * (frac - rise) / fall), 0.0))
    src = np.diff(pulse, prepend=0.0) * shim
    src /= max(np.abs(src).max(), 1e-9)
    # aspiration: noise, stronger in the open phase of each period
    breath = float(np.clip(p["breath"] + voice["breath"], 0.0, 0.8))
    asp = rng.standard_normal(n) * (0.4 + 0.6 * pulse) * breath * 0.6
    # whispered syllables: no pulses, only (stronger) turbulence noise
    asp = np.where(whisper > 0, rng.standard_normal(n) * 0.35, asp)
    src = (src * (1.0 - 0.5 * breath) * (1.0 - whisper) + asp) * env

    # spectral tilt: mix in a low-passed copy; accents (effort) brighten the voice
    dark = np.clip(p["dark"] + voice["dark"] - p["effort"] * 0.5 * (effort - 0.5), 0.0, 0.97)
    lp = lfilter([0.12], [1.0, -0.88], src)
    src = (1.0 - dark) * src + dark * lp * 3.0

    # --- vocal tract: formant cascade per syllable, state carried across ----------------------------
    out = np.zeros(n)
    zi = None
    for s0, s1, vowel in segments:
        sos = _resonator_sos(vowel * voice["formants"], _BANDWIDTHS * (1.0 + breath), sr)
        if zi is None or zi.shape[0] != sos.shape[0]:
            zi = np.zeros((sos.shape[0], 2))
        out[s0:s1], zi = sosfilt(sos, src[s0:s1], zi=zi)
    # lip radiation is in the differentiated pulse already; add the noises and a background floor
    voiced = env > 0.1
    speech_rms = float(np.sqrt(np.mean(out[voiced] ** 2))) if np.any(voiced) else 1.0
    out += noise * speech_rms
    floor = lfilter([1.0], [1.0, -0.9], rng.standard_normal(n)) * 0.1
    out += floor * speech_rms * 10.0 ** (rng.uniform(-48.0, -40.0) / 20.0)
    out *= rng.uniform(0.5, 0.9) / max(np.abs(out).max(), 1e-9)
    return out.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# the corpus on disk


def _clip_fields(n_clips: int, emotion: int) -> List[Tuple[int, int, int]]:
    """``(intensity, statement, repetition)`` of an actor's clips of one emotion, RAVDESS order."""
    if emotion == 1:  # RAVDESS has no strong neutral; ours only beyond its four neutral takes
        combos = [(i, s, r) for i in (1, 2) for r in (1, 2) for s in (1, 2)]
    else:
        combos = [(i, s, r) for r in (1, 2) for s in (1, 2) for i in (1, 2)]
    return combos[:n_clips]


def _file_name(actor: int, emotion: int, intensity: int, statement: int, repetition: int) -> str:
    # 03 = audio-only, 01 = speech, as RAVDESS's audio-speech files
    return f"03-01-{emotion:02d}-{intensity:02d}-{statement:02d}-{repetition:02d}-{actor:02d}.wav"


_SYNTHESIS_THREADS = 8  # at most, and at most the machine's cores


def _code_hash() -> str:
    try:
        return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
    except OSError:  # e.g. running from a zip: the version number alone decides
        return ""


def _read_manifest(root: Path) -> Optional[dict]:
    try:
        with open(root / MANIFEST_NAME, "rb") as fh:
            data = json.loads(fh.read().decode())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or data.get("generator") != "ser_gpu.data.synthetic":
        return None
    return data


def make_corpus(
    root: Optional[PathLike] = None,
    *,
    seed: int = 0,
    n_actors: int = 10,
    n_clips: int = 4,
    sr: int = 22050,
    subtype: str = "PCM_16",
    progress: bool = True,
) -> List[Path]:
    """Write the synthetic corpus ``root/Actor_XX/03-01-EE-II-SS-RR-AA.wav`` (or reuse it) and list it.

    The default is 10 actors x 8 emotions x 4 clips, 0.3-2.8 s each (the length follows the
    emotion's tempo), about 6 minutes of speech after trimming; it takes a few seconds to write.
    Generation is deterministic from ``seed``. A manifest (:data:`MANIFEST_NAME`) records the
    parameters: a second call with the same parameters finds every file in place and writes nothing;
    other parameters regenerate the corpus, removing only the files the old manifest lists. A
    directory that is not empty and holds no manifest is not ours and is never written to. Each file is
    written atomically, and the manifest is marked complete only at the end, so an interrupted run is
    simply redone by the next call.

    Args:
        root (str | os.PathLike | None): corpus directory, created when missing; default
            :func:`default_corpus_dir`.
        seed (int, default 0): seed of every random choice.
        n_actors (int, default 10): actors ``1..n_actors`` (odd male, even female), at most 99.
        n_clips (int, default 4): clips per actor and emotion, 1-8 (RAVDESS intensity x statement x
            repetition; neutral takes the four normal-intensity ones first).
        sr (int, default 22050): sample rate of the files (Hz), at least 8000.
        subtype (str, default 'PCM_16'): ``'PCM_16'`` (16-bit) or ``'FLOAT'`` (32-bit float) WAV.
        progress (bool, default True): show a tqdm bar while generating.

    Returns:
        The paths of the wav files, sorted.

    Raises:
        ParameterError: a bad argument, ``root`` is a file, or ``root`` is a non-empty directory
            without our manifest.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ParameterError(f"seed must be a non-negative integer, got {_describe(seed)}")
    n_actors = check_positive_int(n_actors, "n_actors")
    if n_actors > 99:
        raise ParameterError(f"n_actors must be at most 99 (two-digit actor field), got {n_actors}")
    n_clips = check_positive_int(n_clips, "n_clips")
    if n_clips > 8:
        raise ParameterError(f"n_clips must be at most 8 (intensity x statement x repetition), got {n_clips}")
    sr = check_positive_int(sr, "sr")
    if sr < 8000:
        raise ParameterError(f"sr must be at least 8000 Hz, got {sr}")
    if subtype not in _SUBTYPES:
        raise ParameterError(f"subtype must be one of {_SUBTYPES}, got {subtype!r}")
    root = Path(root).expanduser() if root is not None else default_corpus_dir()
    if root.exists() and not root.is_dir():
        raise ParameterError(f"root {str(root)!r} exists and is not a directory")

    params = {"version": _GENERATOR_VERSION, "code": _code_hash(), "seed": seed, "n_actors": n_actors, "n_clips": n_clips,
              "sr": sr, "subtype": subtype}
    entries = [(actor, emotion, *fields) for actor in range(1, n_actors + 1)
               for emotion in range(1, len(EMOTIONS) + 1) for fields in _clip_fields(n_clips, emotion)]
    rel = [f"Actor_{a:02d}/{_file_name(a, e, i, s, r)}" for a, e, i, s, r in entries]
    paths = [root / r for r in rel]

    manifest = _read_manifest(root) if root.is_dir() else None
    if manifest is None and root.is_dir() and any(root.iterdir()):
        raise ParameterError(
            f"root {str(root)!r} is not empty and holds no {MANIFEST_NAME} (not a ser_gpu synthetic corpus); "
            f"refusing to write into it: choose an empty or new directory")
    if (manifest is not None and manifest.get("complete") and manifest.get("params") == params
            and all(p.is_file() for p in paths)):
        return sorted(paths)

    root.mkdir(parents=True, exist_ok=True)
    if manifest is not None:  # ours, but other parameters or incomplete: drop only what it listed
        for old in manifest.get("files", []):
            old_path = (root / str(old))
            if old_path.parent.parent == root and old_path.suffix == ".wav" and old not in rel:
                old_path.unlink(missing_ok=True)
    record = {"generator": "ser_gpu.data.synthetic", "params": params, "complete": False, "files": rel,
              "emotions": list(EMOTIONS)}
    # claim the directory before the first file lands, so an interrupted run is recognised as ours
    save_json(root / MANIFEST_NAME, record)

    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    def synthesize(entry):
        actor, emotion, intensity, statement, repetition = entry
        return synthesize_clip(seed=seed, actor=actor, emotion=emotion, intensity=intensity, statement=statement,
                               repetition=repetition, sr=sr)

    start = time.perf_counter()
    total = 0
    # each clip draws from its own seed: threads (numpy and scipy work outside the GIL for part of it)
    # give the same files in the same order; 320 clips on 2 cores: 2.0 s against 3.1 s in one thread
    with ThreadPoolExecutor(max(1, min(_SYNTHESIS_THREADS, os.cpu_count() or 1)),
                            thread_name_prefix="ser_gpu-synthetic") as pool:
        for y, path in tqdm(zip(pool.map(synthesize, entries), paths), total=len(paths), desc="synthetic corpus",
                            unit="clip", disable=not progress, leave=False):
            total += len(y)
            path.parent.mkdir(exist_ok=True)
            buf = io.BytesIO()
            sf.write(buf, y, sr, subtype=subtype, format="WAV")
            atomic_write(path, lambda fh, data=buf.getvalue(): fh.write(data))
    record["complete"] = True
    record["seconds_to_generate"] = round(time.perf_counter() - start, 3)
    record["total_audio_s"] = round(total / sr, 3)
    save_json(root / MANIFEST_NAME, record)
    return sorted(paths)
