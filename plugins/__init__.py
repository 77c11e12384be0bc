"""Method plugins shipped with bench; each sub-package registers itself through the
``bench`` entry-point group, exactly as a third-party plugin would."""
