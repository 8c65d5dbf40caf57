"""The FinServe transaction producer (``streamguard workload produce``)."""
