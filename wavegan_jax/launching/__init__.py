"""Sweeps and processes: what launch/sweep.py and launch/local_cluster.py run.

sweeps: grids of config overrides, checked, named and commanded (and the
config-flag parser of the launch scripts); processes: starting and watching
the runs of a sweep or the processes of a local cluster; sweep_summary:
every run's final metrics in one table.
"""
