"""Installed commands: ``medseg-segment`` (:mod:`.segment`), contours on a scan with one command.

A command here is thin: it runs a bundle's **own** ``configs/inference.json`` (MONAI ``ConfigWorkflow`` with
overrides), never a copy of its pipeline. One module per job:

- :mod:`.segment`: the command line, the loop over cases with its progress bar, the summary and exit status;
- :mod:`.locate`: which bundle (a name in this checkout's ``bundles/``, or an extracted bundle folder) and its weights;
- :mod:`.inputs`: what to segment (volume files, folders of them, every series of the bundle's modality in a
  DICOM tree);
- :mod:`.workflow`: the bundle's ``inference.json``, built once, run on one case at a time;
- :mod:`.case`: one case's outputs: what is missing, running what makes it, the manifest written last;
- :mod:`.organ_stats`: volumes per organ, Dice against a reference, the console report;
- :mod:`.preview`: three orthogonal slices with a coloured overlay and a legend, as a PNG (Pillow only).
"""
