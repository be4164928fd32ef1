-- Signal detection (issue 6): the disproportionality table recomputed over the store, the prior each run fitted,
-- and the outbox of signal events published on pv.safety.signal.v1. Definitions: docs/signals.md.
CREATE TABLE signals (
    product VARCHAR NOT NULL,
    event VARCHAR NOT NULL,
    a BIGINT NOT NULL,
    b BIGINT NOT NULL,
    c BIGINT NOT NULL,
    d BIGINT NOT NULL,
    expected DOUBLE NOT NULL,
    prr DOUBLE,
    chi2 DOUBLE,
    chi2_yates DOUBLE,
    ror DOUBLE,
    ror_lo95 DOUBLE,
    ror_hi95 DOUBLE,
    ic DOUBLE NOT NULL,
    ic025 DOUBLE NOT NULL,
    ebgm DOUBLE,
    eb05 DOUBLE,
    eb95 DOUBLE,
    signal_prr BOOLEAN NOT NULL,
    signal_ebgm BOOLEAN NOT NULL,
    signal_ic BOOLEAN NOT NULL,
    computed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (product, event)
);
COMMENT ON TABLE signals IS 'One row per product-event pair with at least one report, replaced at each recomputation.';
COMMENT ON COLUMN signals.product IS 'Suspect or interacting product name as reported.';
COMMENT ON COLUMN signals.event IS 'Reported adverse event term (MedDRA PT when coded).';
COMMENT ON COLUMN signals.a IS 'Distinct reports (cases, latest version) with the product and the event.';
COMMENT ON COLUMN signals.b IS 'Distinct reports with the product and not the event.';
COMMENT ON COLUMN signals.c IS 'Distinct reports with the event and not the product.';
COMMENT ON COLUMN signals.d IS 'Distinct reports with neither.';
COMMENT ON COLUMN signals.expected IS 'Expected a under independence, (a+b)(a+c)/N (summed over strata when stratified).';
COMMENT ON COLUMN signals.prr IS 'Proportional reporting ratio [a/(a+b)]/[c/(c+d)] (Evans 2001); NULL when c = 0.';
COMMENT ON COLUMN signals.chi2 IS 'Pearson chi-square of the 2x2 table, no continuity correction; NULL when a margin is 0.';
COMMENT ON COLUMN signals.chi2_yates IS 'Pearson chi-square with Yates correction (as in Evans 2001); NULL when a margin is 0.';
COMMENT ON COLUMN signals.ror IS 'Reporting odds ratio ad/bc (van Puijenbroek 2002); NULL when any cell is 0.';
COMMENT ON COLUMN signals.ror_lo95 IS 'Lower end of the Wald 95% CI of the ROR on the log scale.';
COMMENT ON COLUMN signals.ror_hi95 IS 'Upper end of the Wald 95% CI of the ROR on the log scale.';
COMMENT ON COLUMN signals.ic IS 'Noren 2013 shrinkage information component log2((a+0.5)/(E+0.5)).';
COMMENT ON COLUMN signals.ic025 IS 'log2 of the 2.5% quantile of Gamma(a+0.5, E+0.5): lower end of the IC 95% interval.';
COMMENT ON COLUMN signals.ebgm IS 'Empirical Bayes geometric mean (DuMouchel 1999); NULL when the prior fit failed.';
COMMENT ON COLUMN signals.eb05 IS '5% quantile of the EBGM posterior; NULL when the prior fit failed.';
COMMENT ON COLUMN signals.eb95 IS '95% quantile of the EBGM posterior; NULL when the prior fit failed.';
COMMENT ON COLUMN signals.signal_prr IS 'PRR >= threshold with Yates chi-square >= threshold and a >= threshold (Evans 2001).';
COMMENT ON COLUMN signals.signal_ebgm IS 'EB05 >= threshold (FDA screening, Szarfman 2002).';
COMMENT ON COLUMN signals.signal_ic IS 'IC025 > threshold (Noren 2013).';
COMMENT ON COLUMN signals.computed_at IS 'When the recomputation that wrote this row ran.';

CREATE TABLE signal_runs (
    computed_at TIMESTAMPTZ PRIMARY KEY,
    reports BIGINT NOT NULL,
    pairs BIGINT NOT NULL,
    hyperparameters JSON,
    fit_error VARCHAR,
    seconds DOUBLE NOT NULL
);
COMMENT ON TABLE signal_runs IS 'Each recomputation: its size, the fitted EBGM prior (HYPER.json form) or why the fit was refused.';

CREATE TABLE signal_publications (
    signal_id UUID PRIMARY KEY,
    product VARCHAR NOT NULL,
    event VARCHAR NOT NULL,
    method VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    strength DOUBLE NOT NULL,
    payload JSON NOT NULL,
    detected_at TIMESTAMPTZ NOT NULL,
    published_at TIMESTAMPTZ
);
COMMENT ON TABLE signal_publications IS 'Outbox of signal events: new or strengthened signals, one row each, published to pv.safety.signal.v1.';
COMMENT ON COLUMN signal_publications.strength IS 'PRR, EB05 or 2^IC025 when detected: a later event needs this times the strengthening ratio.';
COMMENT ON COLUMN signal_publications.published_at IS 'When it reached pv.safety.signal.v1 (NULL: not yet).';
