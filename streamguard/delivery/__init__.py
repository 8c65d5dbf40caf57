"""Delivery: ``streamguard plan`` / ``streamguard validate`` (what a folder of feature resources would
change, and whether it would break anything), plus the GitOps helpers shipped with the Helm chart."""
