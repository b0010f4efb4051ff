"""runpod-deploy: declarative GPU jobs on RunPod (plan, apply, pull, never leak a pod)."""

__version__ = "1.0.0.dev0"
__all__ = ["__version__"]
