"""Other frameworks loading nlconvert's networks.

:mod:`.mmaction2` writes an mmaction2 config + checkpoint (``nlconvert export-mmaction2``;
torch only, mmaction2 is not needed to write them); :mod:`.mmaction2_backbone` is the
backbone mmaction2 builds from that config (imported by mmaction2 through the config's
``custom_imports``; needs ``pip install 'nlconvert[mmaction2]'``). Key names come from the
table ``weights_map/mmaction2.toml``.
"""
