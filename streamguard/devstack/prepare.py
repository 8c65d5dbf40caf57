"""Build what the demo runs before starting anything: the stack's components and the project's images, at once.

The images need only the Debian base, so on a cold machine they build while the Go components compile. This
module uses the standard library only: ``make demo`` runs it (``python -m streamguard.devstack.prepare``)
while the virtualenv installs, and ``streamguard demo up`` calls :func:`prepare` (cached: instant when built).
"""

import sys
from concurrent.futures import ThreadPoolExecutor

from streamguard.devstack import image
from streamguard.devstack.provision import ProvisionError, ensure, stack_artifacts


def prepare() -> image.ProjectImages:
    """Build every missing stack component and the images of the current sources; the images.

    If either fails, the other still finishes (and stays cached for the next attempt) before the error is raised.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="images") as pool:
        images = pool.submit(image.build)
        ensure(stack_artifacts())
        return images.result()


def main() -> None:
    try:
        prepare()
    except ProvisionError as error:
        sys.exit(f"streamguard: {error}")


if __name__ == "__main__":
    main()
