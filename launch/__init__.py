"""Sweep launchers: `launch.local` (this machine's GPUs or CPU) and `launch.slurm` (submitit job arrays)."""
