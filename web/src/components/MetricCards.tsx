import { num, pct } from "../analytics/format";
import { type Kind, METRICS, metricValue } from "../analytics/metrics";
import type { DrawdownPeriod } from "../analytics/series";
import type { Metrics } from "../api/types";
import { type MessageKey, t } from "../i18n";

export function formatMetric(kind: Kind, v: number | null): string {
  if (kind === "pct") return pct(v);
  if (kind === "money") return num(v, 2);
  if (kind === "int") return num(v, 0);
  return num(v, 3);
}

export function MetricCards({ metrics, worst }: { metrics: Metrics; worst: DrawdownPeriod | undefined }) {
  return (
    <div class="cards" data-testid="metric-cards">
      {METRICS.map((spec) => {
        const v = metricValue(metrics, spec);
        return (
          <div class="card" key={spec.key} data-metric={spec.key} data-value={v ?? ""}>
            <div class="label">{t(`metric.${spec.key}` as MessageKey)}</div>
            <div class={`value${spec.signed && v !== null ? (v >= 0 ? " up" : " down") : ""}`}>{formatMetric(spec.kind, v)}</div>
            {spec.key === "max_drawdown" && worst && (
              <div class="sub muted">{t("metric.max_drawdown_period", { start: worst.peak, end: worst.recovery || worst.trough, days: worst.days })}</div>
            )}
          </div>
        );
      })}
    </div>
  );
}
