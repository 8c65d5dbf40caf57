"""A Feast repository generated from FeatureView specs: the custom resources are the source of truth.

``render_*`` functions are pure (no Feast import); :mod:`streamguard.feastrepo.objects` builds the Feast
objects (importing Feast, which costs seconds) and :mod:`streamguard.feastrepo.repo` writes the folder
that ``feast plan``/``feast apply``/``feast serve`` and ``FeatureStore(repo_path=...)`` use.
"""
