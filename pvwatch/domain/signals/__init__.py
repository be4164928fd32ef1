"""Signal detection: disproportionality (PRR, ROR, IC, EBGM), the EBGM prior fit, and Poisson MaxSPRT."""
