#!/bin/sh
# Regenerates speech_16000.wav, speech_44100.wav and speech_48000.wav in this folder (see README.md).
# Needs espeak-ng (1.51) and sox (14.4.2): apt-get install -y espeak-ng sox
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# 22050 Hz 16-bit synthetic speech with a 250 ms pause between the two phrases
espeak-ng -v en-us -s 200 -m -w "$tmp/tts.wav" 'Kids are talking <break time="250ms"/> by the door.'
for sr in 16000 44100 48000; do
    # cut espeak's silent tail, resample, band-limit to 4.5 kHz (like a narrow-band microphone/codec)
    sox -R "$tmp/tts.wav" -b 32 -e floating-point "$tmp/speech.wav" trim 0.03 =1.60 rate -v "$sr" sinc -4500
    # a quiet, equally band-limited room noise (about -60 dBFS) so the pause is a quiet passage, not digital zero
    sox -R -n -r "$sr" -c 1 -b 32 -e floating-point "$tmp/noise.wav" synth 1.57 pinknoise sinc -4500 vol 0.002
    # mix and write 16-bit PCM (sox dithers; -R seeds the dither, so reruns give the same files)
    sox -R -m -v 1 "$tmp/speech.wav" -v 1 "$tmp/noise.wav" -b 16 -e signed-integer "speech_$sr.wav"
done
