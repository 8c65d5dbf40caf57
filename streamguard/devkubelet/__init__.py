"""devkubelet: a DEVELOPMENT-ONLY stand-in for a kubelet and scheduler on a machine without containers.

It registers one Node, binds the Pending pods that StreamGuard manages (label
``app.kubernetes.io/part-of=streamguard``) to it through the ``pods/binding`` subresource, runs each
container as a local process from its rendered command, arguments, environment and mounted
ConfigMaps/Secrets, and reports their state back through the real API (pod status, Events, the node
Lease). There is no isolation whatsoever: images, resource limits, security contexts and networking are
ignored. Never point it at a real cluster. See ``docs/demo.md`` for the conventions it imposes.
"""

NODE_NAME = "streamguard-dev-local"
PART_OF_SELECTOR = "app.kubernetes.io/part-of=streamguard"
RUNTIME_ANNOTATION = "streamguard.dev/dev-runtime"
PORTS_ANNOTATION = "devkubelet.streamguard.dev/ports"
