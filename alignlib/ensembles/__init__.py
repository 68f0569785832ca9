"""Ensembles of networks trained on one task, each member with its own noise: data sets
(:mod:`.data`), noise (:mod:`.noise`), keyed random streams (:mod:`.seeding`), networks and their
batched training (:mod:`.networks`, :mod:`.training`), the ensemble builder (:mod:`.builder`) and
the alignment of an ensemble's activations (:mod:`.alignment`)."""
