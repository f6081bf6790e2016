# One Cloud Monitoring dashboard per environment: for every endpoint, P95 latency and error
# rate (with the paging thresholds drawn), requests by deployed model, replicas and
# accelerator duty cycle (with the digest's 80 % "hot" line). Its address is the stack's
# `dashboard_url` output, for the bot's config and the runbooks.

locals {
  metric_prefix = "aiplatform.googleapis.com/prediction/online"

  # Per endpoint, two rows of a 12-column mosaic. `query` and `thresholds` are JSON text so
  # that every tile has the same attribute types whatever kind of chart it is.
  endpoint_tiles = flatten([
    for i, slug in sort(keys(var.endpoints)) : [
      {
        x     = 0
        y     = i * 8
        width = 6
        title = "${slug}: P95 latency (ms), by deployed model"
        plot  = "LINE"
        query = jsonencode({
          timeSeriesFilter = {
            filter = "${local.endpoint_filter[slug]} AND metric.type = \"${local.metric_prefix}/prediction_latencies\"${var.latency_extra_filter}"
            aggregation = {
              alignmentPeriod    = "60s"
              perSeriesAligner   = "ALIGN_DELTA"
              crossSeriesReducer = "REDUCE_PERCENTILE_95"
              groupByFields      = ["metric.labels.deployed_model_id"]
            }
          }
        })
        thresholds = jsonencode([{
          value      = var.p95_latency_ms
          label      = "page: P95 above ${var.p95_latency_ms} ms"
          color      = "RED"
          direction  = "ABOVE"
          targetAxis = "Y1"
        }])
      },
      {
        x     = 6
        y     = i * 8
        width = 6
        title = "${slug}: error rate (errors / predictions)"
        plot  = "LINE"
        query = jsonencode({
          timeSeriesFilterRatio = {
            numerator = {
              filter = "${local.endpoint_filter[slug]} AND metric.type = \"${local.metric_prefix}/error_count\""
              aggregation = {
                alignmentPeriod    = "60s"
                perSeriesAligner   = "ALIGN_DELTA"
                crossSeriesReducer = "REDUCE_SUM"
                groupByFields      = ["resource.labels.endpoint_id"]
              }
            }
            denominator = {
              filter = "${local.endpoint_filter[slug]} AND metric.type = \"${local.metric_prefix}/prediction_count\""
              aggregation = {
                alignmentPeriod    = "60s"
                perSeriesAligner   = "ALIGN_DELTA"
                crossSeriesReducer = "REDUCE_SUM"
                groupByFields      = ["resource.labels.endpoint_id"]
              }
            }
          }
        })
        thresholds = jsonencode([{
          value      = var.error_rate
          label      = "page: error rate above ${var.error_rate * 100} %"
          color      = "RED"
          direction  = "ABOVE"
          targetAxis = "Y1"
        }])
      },
      {
        x     = 0
        y     = i * 8 + 4
        width = 4
        title = "${slug}: requests / s, by deployed model"
        plot  = "STACKED_AREA"
        query = jsonencode({
          timeSeriesFilter = {
            filter = "${local.endpoint_filter[slug]} AND metric.type = \"${local.metric_prefix}/prediction_count\""
            aggregation = {
              alignmentPeriod    = "60s"
              perSeriesAligner   = "ALIGN_RATE"
              crossSeriesReducer = "REDUCE_SUM"
              groupByFields      = ["metric.labels.deployed_model_id"]
            }
          }
        })
        thresholds = "[]"
      },
      {
        x     = 4
        y     = i * 8 + 4
        width = 4
        title = "${slug}: replicas, by deployed model"
        plot  = "STACKED_BAR"
        query = jsonencode({
          timeSeriesFilter = {
            filter = "${local.endpoint_filter[slug]} AND metric.type = \"${local.metric_prefix}/replicas\""
            aggregation = {
              alignmentPeriod    = "60s"
              perSeriesAligner   = "ALIGN_MEAN"
              crossSeriesReducer = "REDUCE_SUM"
              groupByFields      = ["metric.labels.deployed_model_id"]
            }
          }
        })
        thresholds = "[]"
      },
      {
        x     = 8
        y     = i * 8 + 4
        width = 4
        title = "${slug}: accelerator duty cycle, by deployed model"
        plot  = "LINE"
        query = jsonencode({
          timeSeriesFilter = {
            filter = "${local.endpoint_filter[slug]} AND metric.type = \"${local.metric_prefix}/accelerator/duty_cycle\""
            aggregation = {
              alignmentPeriod    = "60s"
              perSeriesAligner   = "ALIGN_MEAN"
              crossSeriesReducer = "REDUCE_MEAN"
              groupByFields      = ["metric.labels.deployed_model_id"]
            }
          }
        })
        thresholds = jsonencode([{
          value      = 0.8
          label      = "hot: duty cycle above 80 % (digest capacity)"
          color      = "YELLOW"
          direction  = "ABOVE"
          targetAxis = "Y1"
        }])
      },
    ]
  ])

  dashboard = {
    displayName = "aiops-bot ${var.environment}: Vertex AI endpoints"
    mosaicLayout = {
      columns = 12
      tiles = [
        for t in local.endpoint_tiles : {
          xPos   = t.x
          yPos   = t.y
          width  = t.width
          height = 4
          widget = {
            title = t.title
            xyChart = {
              dataSets = [{
                plotType        = t.plot
                targetAxis      = "Y1"
                timeSeriesQuery = jsondecode(t.query)
              }]
              thresholds = jsondecode(t.thresholds)
              yAxis      = { scale = "LINEAR" }
            }
          }
        }
      ]
    }
  }
}

resource "google_monitoring_dashboard" "endpoints" {
  project        = var.project_id
  dashboard_json = jsonencode(local.dashboard)
}
