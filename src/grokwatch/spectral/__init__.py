"""The numbers of one layer: its eigenvalue spectrum, the power-law fit of the tail, the
Marchenko-Pastur bulk and the correlation traps that stand above it.

    esd.py               eigenvalues of W^T W (float64) and cheap spectrum metrics
    powerlaw.py          WeightWatcher-exact tail fit (and the peak / powerlaw options)
    marchenko_pastur.py  MP edges, density, CDF and the Tracy-Widom margin
    traps.py             element-shuffled spectra and the eigenvalues above the MP edge
"""

from grokwatch.spectral.esd import esd, spectrum_metrics
from grokwatch.spectral.powerlaw import PowerLawFit, fit_tail, ww_fit
from grokwatch.spectral.traps import TrapResult, find_traps

__all__ = ["PowerLawFit", "TrapResult", "esd", "find_traps", "fit_tail", "spectrum_metrics", "ww_fit"]
