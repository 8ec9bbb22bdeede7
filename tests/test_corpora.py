"""ser_gpu.data.corpora: CREMA-D, TESS, SAVEE and EmoDB names beside RAVDESS's, mixed corpora end to end."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from ser_gpu import evaluate
from ser_gpu.data import EMOTIONS, Clip, corpus_table, detect_corpus, parse_corpus_name, scan_corpus, split_clips
from ser_gpu.data import corpora
from ser_gpu.errors import ParameterError
from ser_gpu.train import TrainConfig, build_parser, train_model
from tests.tiny_corpus import FAST, write_corpus, write_named_corpus
from tests.conftest import touch

L = {name: i for i, name in enumerate(EMOTIONS)}

# (name, corpus, speaker, actor, emotion): written out from each corpus's documentation
VALID = [
    ("03-01-05-02-01-02-12.wav", "ravdess", "ravdess:12", 12, "angry"),
    ("1001_DFA_ANG_XX.wav", "crema-d", "crema-d:1001", 1001, "angry"),
    ("1091_WSI_DIS_LO.wav", "crema-d", "crema-d:1091", 1091, "disgust"),
    ("1045_IEO_FEA_HI.wav", "crema-d", "crema-d:1045", 1045, "fearful"),
    ("1002_TIE_HAP_MD.wav", "crema-d", "crema-d:1002", 1002, "happy"),
    ("1003_ITS_NEU_XX.wav", "crema-d", "crema-d:1003", 1003, "neutral"),
    ("1004_MTI_SAD_XX.flac", "crema-d", "crema-d:1004", 1004, "sad"),
    ("OAF_back_angry.wav", "tess", "tess:OAF", 1, "angry"),
    ("YAF_bar_disgust.wav", "tess", "tess:YAF", 2, "disgust"),
    ("OAF_base_fear.wav", "tess", "tess:OAF", 1, "fearful"),
    ("YAF_bath_happy.wav", "tess", "tess:YAF", 2, "happy"),
    ("OAF_bean_neutral.wav", "tess", "tess:OAF", 1, "neutral"),
    ("YAF_beg_ps.wav", "tess", "tess:YAF", 2, "surprised"),  # pleasant surprise
    ("OAF_bite_sad.wav", "tess", "tess:OAF", 1, "sad"),
    ("DC_a01.wav", "savee", "savee:DC", 1, "angry"),
    ("JE_d15.wav", "savee", "savee:JE", 2, "disgust"),
    ("JK_f03.wav", "savee", "savee:JK", 3, "fearful"),
    ("KL_h11.wav", "savee", "savee:KL", 4, "happy"),
    ("DC_n30.wav", "savee", "savee:DC", 1, "neutral"),
    ("JE_sa02.wav", "savee", "savee:JE", 2, "sad"),
    ("JK_su14.wav", "savee", "savee:JK", 3, "surprised"),
    ("03a01Wa.wav", "emodb", "emodb:03", 3, "angry"),
    ("08a02Ec.wav", "emodb", "emodb:08", 8, "disgust"),
    ("09b01Ab.wav", "emodb", "emodb:09", 9, "fearful"),
    ("10b10Fa.wav", "emodb", "emodb:10", 10, "happy"),
    ("11a04Nd.wav", "emodb", "emodb:11", 11, "neutral"),
    ("16b03Ta.wav", "emodb", "emodb:16", 16, "sad"),
    ("1040_ITH_SAD_X.wav", "crema-d", "crema-d:1040", 1040, "sad"),  # shipped with level X for XX
    ("OA_bite_neutral.wav", "tess", "tess:OAF", 1, "neutral"),       # shipped with OA for OAF
]

INVALID = [
    "1001_DFA_CAL_XX.wav",     # CREMA-D: unknown emotion
    "1001_XYZ_ANG_XX.wav",     # CREMA-D: unknown sentence
    "1001_DFA_ANG_ZZ.wav",     # CREMA-D: unknown intensity
    "1001_DFA_ANG.wav",        # three fields (and not a TESS speaker)
    "1001_DFA_ANG_XX_2.wav",   # five fields
    "101_DFA_ANG_XX.wav",      # three-digit speaker
    "OAF_back_calm.wav",       # TESS: unknown emotion
    "MAF_back_angry.wav",      # TESS: unknown speaker
    "OAF_back.wav",            # two fields
    "OAF_back_angry_2.wav",    # four fields
    "DC_x01.wav",              # SAVEE: unknown code
    "XX_a01.wav",              # SAVEE: unknown speaker
    "DC_a1.wav",               # one-digit number
    "DC_a01_b.wav",            # three fields
    "03a01Xa.wav",             # EmoDB: unknown emotion letter
    "03c01Wa.wav",             # EmoDB: text not a/b
    "3a01Wa.wav",              # EmoDB: one-digit speaker
    "03a01Wa1.wav",            # one character too many
    "03a01wa.wav",             # EmoDB codes are case-sensitive
    "speech.wav",
    "._DC_a01.wav",            # macOS resource fork
    "1001_DFA_ANG_Y.wav",      # CREMA-D: a one-letter level other than the shipped X
    "OB_back_angry.wav",       # TESS: a two-letter speaker other than the shipped OA
    "a01.wav",                 # SAVEE without its speaker prefix, outside a speaker's folder
    "2024-01-05-10-30-00-00.wav",  # seven numbers, not RAVDESS's codes
]


@pytest.mark.parametrize("name, corpus, speaker, actor, emotion", VALID)
def test_each_scheme_reads_corpus_speaker_and_label(name, corpus, speaker, actor, emotion):
    clip = parse_corpus_name(Path("d") / name)
    assert (clip.corpus, clip.speaker, clip.actor, clip.emotion) == (corpus, speaker, actor, emotion)
    assert clip.label == L[emotion] and clip.path == Path("d") / name
    assert detect_corpus(name) == corpus
    assert parse_corpus_name(Path("d") / name, corpus=corpus) == clip  # forcing the right scheme: the same clip
    assert parse_corpus_name(Path("d") / name, corpus=corpus.upper()) == clip  # corpus names in any case


@pytest.mark.parametrize("name", [v[0] for v in VALID] + ["03a01La.wav"])
def test_no_name_is_accepted_by_two_schemes(name):
    accepted = [c for c, parse in corpora._PARSERS.items() if parse(Path(name)) is not None]
    assert len(accepted) == 1, accepted
    others = [c for c in corpora.CORPORA if c != accepted[0]]
    assert all(parse_corpus_name(name, corpus=c) is None for c in others)


@pytest.mark.parametrize("name", INVALID)
def test_names_that_must_be_skipped(name):
    assert parse_corpus_name(name) is None
    assert detect_corpus(name) is None


def test_savee_in_the_layout_of_its_download():
    """AudioData/DC/a01.wav: the speaker is the folder (the SAVEE download's own layout; skipped before)."""
    clip = parse_corpus_name(Path("SAVEE/AudioData/JK/su14.wav"))
    assert (clip.corpus, clip.speaker, clip.actor, clip.emotion) == ("savee", "savee:JK", 3, "surprised")
    assert parse_corpus_name(Path("AudioData/DC/sa02.wav")).emotion == "sad"
    assert parse_corpus_name(Path("AudioData/XX/a01.wav")) is None and parse_corpus_name(Path("dc/a01.wav")) is None
    assert detect_corpus(Path("KL/n30.wav")) == "savee"


def test_ravdess_names_hold_ravdess_codes_and_song_is_skipped():
    """A name with seven numbers outside RAVDESS's codes was read as a clip (2024-01-05-... as angry);
    the sung files (vocal channel 02) unpack beside the speech and were mixed in silently."""
    from ser_gpu.data import parse_ravdess_name

    for bad in ("2024-01-05-10-30-00-00", "3-01-05-01-01-01-01", "04-01-05-01-01-01-01", "03-03-05-01-01-01-01",
                "03-01-05-03-01-01-01", "03-01-05-01-03-01-01", "03-01-05-01-01-03-01", "03-01-05-01-01-01-00",
                "03-01-05-01-01-01-100"):
        assert parse_ravdess_name(bad + ".wav") is None, bad
    assert parse_ravdess_name("01-01-05-02-02-02-99.wav").actor == 99  # the synthetic corpus goes to 99
    song = "03-02-06-02-02-02-01.wav"
    assert parse_ravdess_name(song).vocal_channel == 2  # the parser reads it; the corpus scan skips it
    assert parse_corpus_name(song) is None and detect_corpus(song) == "ravdess"


def test_scan_skips_ravdess_song_with_a_count(tmp_path):
    speech = touch(tmp_path / "Actor_01" / "03-01-03-01-01-01-01.wav")
    touch(tmp_path / "Actor_01" / "03-02-03-01-01-01-01.wav")
    touch(tmp_path / "Actor_01" / "03-02-06-02-02-02-01.wav")
    with pytest.warns(UserWarning, match="skipped 2 audio file.*2 RAVDESS file\\(s\\) sung \\(vocal channel 02"):
        clips = scan_corpus([tmp_path])
    assert [c.path for c in clips] == [speech]


def test_a_recording_in_several_formats_is_one_clip(tmp_path, monkeypatch):
    """CREMA-D's repository ships every clip in AudioWAV/ and AudioMP3/: both were clips, and a random
    split put one recording in training and validation (reproduced: 10 of 11 validation recordings).
    Under one data directory the best format is kept; files of one format (clean/noisy versions) and
    files under different data directories (a real corpus beside the synthetic one) are all kept."""
    root = tmp_path / "CREMA-D"
    for speaker in (1001, 1002, 1003, 1004):
        for emotion in ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD"):
            touch(root / "AudioWAV" / f"{speaker}_DFA_{emotion}_XX.wav")
            touch(root / "AudioMP3" / f"{speaker}_DFA_{emotion}_XX.mp3")
    touch(root / "AudioWAV" / "1040_ITH_SAD_X.wav")
    touch(root / "fixed" / "1040_ITH_SAD_XX.mp3")  # the shipped name corrected: the same recording
    touch(tmp_path / "TESS" / "OAF_back_angry.flac")
    touch(tmp_path / "TESS" / "copy" / "oaf_back_angry.wav")  # another case, folder and format
    touch(tmp_path / "TESS" / "OAF_neutral" / "OA_bite_neutral.wav")
    touch(tmp_path / "TESS" / "fixed" / "OAF_bite_neutral.mp3")
    touch(tmp_path / "SAVEE" / "DC_a01.mp3")
    touch(tmp_path / "SAVEE" / "AudioData" / "DC" / "a01.wav")  # the download's layout
    clean = touch(tmp_path / "eval" / "clean" / "03-01-05-01-01-01-01.wav")
    noisy = touch(tmp_path / "eval" / "noisy" / "03-01-05-01-01-01-01.wav")
    dirs = [root, tmp_path / "TESS", tmp_path / "SAVEE", tmp_path / "eval"]
    with pytest.warns(UserWarning, match="skipped 28 audio file.*28 file\\(s\\) holding a recording found in a "
                                         "better format") as record:
        clips = scan_corpus(dirs)
    message = str(record[0].message)
    assert "e.g. '" + str(root / "AudioMP3" / "1001_DFA_ANG_XX.mp3") + "' (kept '" in message  # first by path
    assert "kept: 1 recording name(s) found more than once in one format" in message and "clean" in message
    assert len(clips) == 25 + 2 + 1 + 2
    assert {c.path.suffix for c in clips if c.corpus in ("crema-d", "savee")} == {".wav"}  # the lossless copies
    assert sorted(c.path.name for c in clips if c.corpus == "tess") == ["OA_bite_neutral.wav", "oaf_back_angry.wav"]
    assert {clean, noisy} <= {c.path for c in clips}  # one format: versions, both kept
    train, val, _ = split_clips([c for c in clips if c.corpus != "ravdess"], method="random", val_fraction=0.25,
                                seed=0)
    others = [c for c in clips if c.corpus != "ravdess"]
    recordings = lambda part: {corpora._recording(others[i]) for i in part}
    assert len(val) >= 6 and not recordings(train) & recordings(val)
    # under different data directories nothing is dropped (the synthetic corpus shares RAVDESS's names)
    synthetic = touch(tmp_path / "synthetic" / "Actor_01" / "03-01-05-01-01-01-01.flac")
    with pytest.warns(UserWarning, match="^under .*: kept: 1 recording name") as record:
        assert [c.path for c in scan_corpus([tmp_path / "eval", tmp_path / "synthetic"])] == [clean, noisy, synthetic]
    assert "skipped" not in str(record[0].message)
    # .aif and .aiff are one format: both kept, the mp3 dropped
    touch(tmp_path / "aiff" / "a" / "DC_h01.aif")
    touch(tmp_path / "aiff" / "b" / "DC_h01.aiff")
    touch(tmp_path / "aiff" / "c" / "DC_h01.mp3")
    with pytest.warns(UserWarning, match="skipped 1 audio file.*kept: 1 recording name"):
        assert sorted(c.path.suffix for c in scan_corpus([tmp_path / "aiff"])) == [".aif", ".aiff"]
    # SAVEE's layout with the data directory given as "." (the folder name is not in the relative path)
    monkeypatch.chdir(tmp_path / "SAVEE" / "AudioData" / "DC")
    assert [c.speaker for c in scan_corpus(["."])] == ["savee:DC"]


def test_case_rules():
    assert parse_corpus_name("1001_dfa_ang_xx.wav").label == L["angry"]  # CREMA-D codes: any case
    assert parse_corpus_name("oaf_back_PS.wav").speaker == "tess:OAF"  # TESS words: any case
    assert parse_corpus_name("dc_a01.wav") is None  # SAVEE as published


def test_emodb_boredom_is_a_known_name_without_a_label():
    assert parse_corpus_name("03a01La.wav") is None
    assert detect_corpus("03a01La.wav") == "emodb"
    assert corpora.LABEL_MAPS["emodb"]["L"] is None


def test_label_maps_use_ravdess_names_only_and_calm_is_ravdess_only():
    for corpus, mapping in corpora.LABEL_MAPS.items():
        assert set(mapping.values()) - {None} <= set(EMOTIONS), corpus
        assert ("calm" in mapping.values()) == (corpus == "ravdess")
    assert "surprised" not in corpora.LABEL_MAPS["crema-d"].values()
    assert "surprised" not in corpora.LABEL_MAPS["emodb"].values()


def test_bad_corpus_name():
    with pytest.raises(ParameterError, match="corpus must be one of .* got 'iemocap'"):
        parse_corpus_name("DC_a01.wav", corpus="iemocap")
    with pytest.raises(ParameterError, match="got 3"):
        parse_corpus_name("DC_a01.wav", corpus=3)
    assert parse_corpus_name("DC_a01.wav", corpus="auto").speaker == "savee:DC"


def test_clip_speaker_defaults_to_ravdess_actor():
    assert Clip(path=Path("x.wav"), label=0, actor=7).speaker == "ravdess:07"
    assert Clip(path=Path("x.wav"), label=0, actor=3, corpus="emodb").speaker == "emodb:03"
    assert parse_corpus_name("03a01Wa.wav").speaker != parse_corpus_name("03-01-05-01-01-01-03.wav").speaker


# --------------------------------------------------------------------------------------------- scanning



def test_scan_mixed_directories_counts_every_skipped_kind(tmp_path):
    for name, *_ in VALID:
        touch(tmp_path / "mixed" / name)
    for name in ("03a01La.wav", "08b02Lb.wav"):  # boredom
        touch(tmp_path / "emodb" / name)
    for name in ("OAF_back_calm.wav", "DC_x01.wav", "03a01Xa.wav"):  # bad codes
        touch(tmp_path / "emodb" / name)
    with pytest.warns(UserWarning) as record:
        clips = scan_corpus([tmp_path / "mixed", tmp_path / "emodb"])
    assert len(record) == 1
    message = str(record[0].message)
    assert "skipped 5 audio file(s)" in message
    assert "3 whose names follow no known corpus's naming scheme" in message
    assert "2 EmoDB file(s) of 'boredom'" in message and "no RAVDESS label" in message
    assert len(clips) == len(VALID)
    assert [c.path for c in clips] == sorted((c.path for c in clips), key=str)
    assert {(c.path.name, c.corpus, c.speaker, c.emotion) for c in clips} == {(n, c, s, e) for n, c, s, _, e in VALID}


def test_scan_forced_corpus_skips_other_names(tmp_path):
    for name, *_ in VALID:
        touch(tmp_path / name)
    n_tess = sum(1 for v in VALID if v[1] == "tess")
    with pytest.warns(UserWarning, match=f"skipped {len(VALID) - n_tess} audio file\\(s\\).*are not TESS names"):
        clips = scan_corpus([tmp_path], corpus="tess")
    assert len(clips) == n_tess and {c.corpus for c in clips} == {"tess"}
    with pytest.raises(ParameterError, match="no valid TESS-named audio file"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scan_corpus([touch(tmp_path / "only" / "DC_a01.wav").parent], corpus="tess")


def test_scan_one_corpus_per_directory(tmp_path):
    a = touch(tmp_path / "a" / "DC_a01.wav")
    b = touch(tmp_path / "b" / "OAF_back_angry.wav")
    touch(tmp_path / "b" / "JE_a02.wav")  # a SAVEE name in the TESS folder
    with pytest.warns(UserWarning, match="skipped 1 audio file.*'JE_a02.wav'") as record:
        clips = scan_corpus([tmp_path / "a", tmp_path / "b"], corpus=["savee", "tess"])
    assert "are not TESS names" in str(record[0].message)
    assert [(c.path, c.corpus) for c in clips] == [(a, "savee"), (b, "tess")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(scan_corpus([tmp_path / "a", tmp_path / "b"], corpus=["savee", "auto"])) == 3
    with pytest.raises(ParameterError, match="one per directory \\(2\\), got 3"):
        scan_corpus([tmp_path / "a", tmp_path / "b"], corpus=["savee", "tess", "emodb"])


def test_scan_only_boredom_is_a_clear_error(tmp_path):
    touch(tmp_path / "03a01La.wav")
    with pytest.raises(ParameterError, match="1 audio file\\(s\\) skipped.*'03a01La.wav'.*boredom"):
        scan_corpus([tmp_path])


def test_corpus_table_counts_and_marks_absent_emotions():
    clips = [parse_corpus_name(n) for n in ("DC_a01.wav", "DC_a02.wav", "JE_su01.wav", "03a01Wa.wav",
                                            "03-01-02-01-01-01-01.wav")]
    lines = corpus_table(clips).splitlines()
    assert lines[0].split() == ["corpus", *[e[:9] for e in EMOTIONS], "total"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    #                    neutral calm happy sad angry fearful disgust surprised total
    assert rows["RAVDESS"] == ["0", "1", "0", "0", "0", "0", "0", "0", "1"]
    assert rows["SAVEE"] == ["0", "-", "0", "0", "2", "0", "0", "1", "3"]
    assert rows["EmoDB"] == ["0", "-", "0", "0", "1", "0", "0", "-", "1"]
    assert rows["total"] == ["0", "1", "0", "0", "3", "0", "0", "1", "5"]
    assert list(rows) == ["RAVDESS", "SAVEE", "EmoDB", "total"]


# ---------------------------------------------------------------------------------------------- splits

def _mixed_clips():
    """10 RAVDESS actors, 10 CREMA-D speakers, TESS 2, SAVEE 4, EmoDB 10 (actor numbers overlap)."""
    names = [f"03-01-{e:02d}-01-01-01-{a:02d}.wav" for a in range(1, 11) for e in (1, 3, 5)]
    names += [f"{1000 + s}_DFA_{e}_XX.wav" for s in range(1, 11) for e in ("NEU", "HAP", "ANG")]
    names += [f"{s}_back_{e}.wav" for s in ("OAF", "YAF") for e in ("neutral", "happy", "angry")]
    names += [f"{s}_{e}01.wav" for s in ("DC", "JE", "JK", "KL") for e in ("n", "h", "a")]
    names += [f"{s:02d}a01{e}a.wav" for s in (3, 8, 9, 10, 11, 12, 13, 14, 15, 16) for e in "NFW"]
    return [parse_corpus_name(n) for n in names]


def test_speakers_are_unique_across_corpora():
    clips = _mixed_clips()
    assert len({c.speaker for c in clips}) == 10 + 10 + 2 + 4 + 10
    assert len({c.actor for c in clips}) < 36  # actor numbers alone collide (RAVDESS 3 vs EmoDB 03, ...)


@pytest.mark.parametrize("kwargs", [dict(seed=0), dict(seed=4), dict(seed=1, test_fraction=0.0),
                                    dict(seed=2, n_folds=4, fold=1), dict(seed=3, n_folds=6, fold=5)])
def test_actor_split_never_puts_a_speaker_in_two_roles_across_corpora(kwargs):
    clips = _mixed_clips()
    split = split_clips(clips, method="actor", **kwargs)
    roles = [{clips[i].speaker for i in part} for part in split]
    assert not (roles[0] & roles[1]) and not (roles[0] & roles[2]) and not (roles[1] & roles[2])
    assert sorted(split.train + split.val + split.test) == list(range(len(clips)))
    # and every clip of a held-out speaker is held out
    for part, speakers in zip(split, roles):
        assert set(part) == {i for i, c in enumerate(clips) if c.speaker in speakers}


def test_actor_split_deals_corpora_in_proportion():
    clips = _mixed_clips()
    for seed in range(5):
        split = split_clips(clips, method="actor", seed=seed, val_fraction=0.2, test_fraction=0.2)
        test = {clips[i].speaker for i in split.test}
        per = {c: sum(s.startswith(c + ":") for s in test) for c in corpora.CORPORA}
        # 36 speakers -> 7 held out for testing: 2 of each ten-speaker corpus, at most 1 of the others
        assert per["ravdess"] == per["crema-d"] == per["emodb"] == 2 and per["tess"] + per["savee"] == 1, per
        # the sexes of each corpus with ten known speakers are mixed
        for corpus in ("ravdess", "emodb"):
            sexes = {corpora.speaker_sex(corpus, c.actor) for c in clips if c.speaker in test and c.corpus == corpus}
            assert sexes == {"m", "f"}, (seed, corpus)


@pytest.mark.parametrize("kwargs, val, test", [
    # held-out actors of a 24-actor RAVDESS corpus, from the split code before the corpora (main at 0e89538)
    (dict(seed=0), [4, 10, 11, 15, 19], [1, 6, 8, 17, 24]),
    (dict(seed=5), [4, 6, 8, 13, 21], [1, 10, 14, 19, 23]),
])
def test_ravdess_actor_split_is_unchanged(kwargs, val, test):
    clips = [Clip(path=Path(f"{a}-{e}.wav"), label=e, actor=a) for a in range(1, 25) for e in range(8)]
    split = split_clips(clips, method="actor", **kwargs)
    assert sorted({clips[i].actor for i in split.val}) == val
    assert sorted({clips[i].actor for i in split.test}) == test


@pytest.mark.parametrize("n_folds", [3, 4, 5, 6, 8, 12])
def test_actor_folds_mix_the_sexes(n_folds):
    # Round-robin dealing of the male/female-interleaved order gave one-sex folds for every even
    # n_folds (RAVDESS with --folds 6: test actors 8 and 10, then 1 and 5, ...).
    clips = [Clip(path=Path(f"{a}-{e}.wav"), label=e, actor=a) for a in range(1, 13) for e in range(8)]
    for seed in range(3):
        seen = []
        for fold in range(n_folds):
            split = split_clips(clips, method="actor", seed=seed, n_folds=n_folds, fold=fold)
            test = sorted({clips[i].actor for i in split.test})
            seen += test
            assert len(test) in (12 // n_folds, -(-12 // n_folds)), (seed, fold, test)
            if len(test) >= 2:
                assert {a % 2 for a in test} == {0, 1}, (seed, n_folds, fold, test)
        assert sorted(seen) == list(range(1, 13))


# ------------------------------------------------------------------------------------------- CLI options

def test_corpus_option_and_config():
    assert build_parser().parse_args(["--corpus", "tess"]).corpus == ["tess"]
    assert TrainConfig(data_dirs=["a", "b"], corpus=["TESS", "auto"]).corpus == ["tess", "auto"]
    assert TrainConfig(data_dirs=["a"], corpus="savee").corpus == ["savee"]
    assert TrainConfig.from_dict(TrainConfig(data_dirs=["a"], corpus=["emodb"]).to_dict()).corpus == ["emodb"]
    with pytest.raises(ParameterError, match="one per directory \\(2\\), got 3"):
        TrainConfig(data_dirs=["a", "b"], corpus=["tess", "savee", "emodb"])
    with pytest.raises(ParameterError, match="corpus must be one of"):
        TrainConfig(data_dirs=["a"], corpus=["iemocap"])
    with pytest.raises(ParameterError, match="needs data_dirs"):
        TrainConfig(corpus=["tess"])


# ------------------------------------------------------------------------------------- train + evaluate

@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A tiny corpus of all five schemes (two speakers each, four emotions) and a 1-epoch run on it."""
    root = tmp_path_factory.mktemp("mixed")
    dirs = [write_corpus(root / "ravdess", emotions=(1, 3, 4, 5), actors=(1, 2), per=1)]
    dirs += [write_named_corpus(root / c, c) for c in ("crema-d", "tess", "savee", "emodb")]
    return root, dirs


def test_train_one_epoch_on_mixed_corpora(mixed, capsys):
    root, dirs = mixed
    settings = dict(FAST, progress=True)
    result = train_model(epochs=1, data_dirs=[str(d) for d in dirs], out=str(root / "run"),
                         cache_dir=str(root / "cache"), split="actor", **settings)
    err = capsys.readouterr().err
    assert result["epochs_run"] == 1 and result["best_checkpoint"]
    # 10 speakers: 2 for testing, 2 for validation, 6 for training; 4 clips each
    assert result["split_sizes"] == {"train": 24, "val": 8, "test": 8}
    table = err[err.index("clips per corpus and emotion:"):].splitlines()[1:8]
    rows = {line.split()[0]: line.split()[1:] for line in table}
    #                   neutral calm happy sad angry fearful disgust surprised total
    assert rows["RAVDESS"] == ["2", "0", "2", "2", "2", "0", "0", "0", "8"]
    assert rows["CREMA-D"] == ["2", "-", "2", "2", "2", "0", "0", "-", "8"]
    assert rows["TESS"] == rows["SAVEE"] == ["2", "-", "2", "2", "2", "0", "0", "0", "8"]
    assert rows["EmoDB"] == ["2", "-", "2", "2", "2", "0", "0", "-", "8"]
    assert rows["total"][-1] == "40"
    stored = json.loads(json.dumps(result))  # plain data
    assert stored["test"]["n_clips"] == 8


def test_evaluate_reports_per_corpus(mixed, tmp_path, capsys):
    root, dirs = mixed
    ckpt = root / "run" / "best.pt"
    if not ckpt.exists():
        train_model(epochs=1, data_dirs=[str(d) for d in dirs], out=str(root / "run"), cache_dir=str(root / "cache"),
                    split="actor", **FAST)
    out = tmp_path / "eval"
    code = evaluate.main(["--checkpoint", str(ckpt), *[a for d in dirs for a in ("--data-dir", str(d))],
                          "--out", str(out), "--cache-dir", str(root / "cache"), "--quiet", "--device", "cpu"])
    text = capsys.readouterr().out
    assert code == 0
    data = json.loads((out / "evaluation.json").read_text())
    per = data["per_corpus"]
    assert list(per) == ["ravdess", "crema-d", "tess", "savee", "emodb"]
    total = np.zeros((8, 8), dtype=int)
    for name, m in per.items():
        assert m["n_clips"] == 8 and m["labels"] == list(EMOTIONS)
        cm = np.array(m["confusion"])
        total += cm
        assert m["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
        present = [i for i in range(8) if cm[i].sum()]
        assert present == [0, 2, 3, 4]  # the four emotions written
        assert m["uar"] == pytest.approx(np.mean([cm[i, i] / cm[i].sum() for i in present]))
    assert total.tolist() == data["confusion"] and data["n_clips"] == 40  # the corpora partition the clips
    report = (out / "report.txt").read_text()
    assert report.rstrip("\n") == text.rstrip("\n")
    lines = text[text.index("per corpus"):].splitlines()
    assert [line.split()[0] for line in lines[2:]] == ["RAVDESS", "CREMA-D", "TESS", "SAVEE", "EmoDB"]
    assert lines[2].split()[1:3] == ["8", f"{per['ravdess']['accuracy']:.4f}"]
    # forcing one scheme on every folder keeps that corpus only
    with pytest.warns(UserWarning, match="are not TESS names"):
        forced = evaluate.evaluate_model(ckpt, dirs[2:3] + dirs[:1], corpus="tess", cache_dir=root / "cache",
                                         progress=False, device="cpu")
    assert list(forced["per_corpus"]) == ["tess"] and forced["n_clips"] == 8


def test_readme_mapping_table_is_the_code():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start = text.index("| label     | RAVDESS |")
    rows = []
    for line in text[start:].splitlines():
        if not line.startswith("|"):
            break
        rows.append(line)
    head = [c.strip() for c in rows[0].strip("|").split("|")]
    titles = {t: c for c, t in corpora.CORPUS_TITLES.items()}
    columns = [titles[t] for t in head[1:]]
    seen = {c: set() for c in columns}
    for line in rows[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        label = None if cells[0] == "skipped" else cells[0]
        for corpus, cell in zip(columns, cells[1:]):
            if cell in ("", "—"):
                assert label is None or label not in corpora.LABEL_MAPS[corpus].values(), (corpus, label)
                continue
            code = cell.split()[0]
            assert corpora.LABEL_MAPS[corpus][code] == label, (corpus, code, label)
            seen[corpus].add(code)
    assert seen == {c: set(corpora.LABEL_MAPS[c]) for c in columns}


def test_scan_per_directory_schemes_name_the_rule_when_several_miss(tmp_path):
    touch(tmp_path / "a" / "DC_a01.wav")
    touch(tmp_path / "a" / "OAF_back_angry.wav")  # not SAVEE
    touch(tmp_path / "b" / "OAF_bar_sad.wav")
    touch(tmp_path / "b" / "DC_a02.wav")  # not TESS
    with pytest.warns(UserWarning, match="skipped 2 audio file.*not named like their directory's corpus"):
        clips = scan_corpus([tmp_path / "a", tmp_path / "b"], corpus=["savee", "tess"])
    assert [c.path.name for c in clips] == ["DC_a01.wav", "OAF_bar_sad.wav"]


def test_train_cli_corpus_reaches_the_scan(mixed, tmp_path, capsys):
    from ser_gpu import train

    root, dirs = mixed
    argv = ["--data-dir", str(dirs[2]), "--out", str(tmp_path / "run"), "--cache-dir", str(root / "cache"),
            "--epochs", "1", "--quiet"]
    assert train.main(argv + ["--corpus", "savee"]) == 2  # the TESS files are not SAVEE names
    assert "no valid SAVEE-named audio file" in capsys.readouterr().err
    assert train.main(argv + ["--corpus", "tess", "--corpus", "savee"]) == 2
    assert "one per directory (1), got 2" in capsys.readouterr().err
    assert not (tmp_path / "run" / "last.pt").exists()
