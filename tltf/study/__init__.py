"""Studies and searches: many tltf runs executed as Ray Tune trials, compared with paired statistics.

`tltf.fit` and the rest of tltf never import Ray; only running a study or a
search does (`pip install 'tltf[study]'`).
"""

from tltf.study.spec import StudyRun, StudySpec, expand_runs, load_study
from tltf.study.study import StudyResult, run_study

__all__ = ["StudyResult", "StudyRun", "StudySpec", "expand_runs", "load_study", "run_study"]
