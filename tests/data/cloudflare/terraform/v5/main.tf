# Cloudflare provider v5: attributes with the API's nesting, one resource per zone setting
resource "cloudflare_zone_setting" "brotli" {
  zone_id    = var.zone_id
  setting_id = "brotli"
  value      = "off"
}

resource "cloudflare_zone_setting" "email_obfuscation" {
  zone_id    = var.zone_id
  setting_id = "email_obfuscation"
  value      = "off"
}

resource "cloudflare_zone_setting" "automatic_https_rewrites" {
  zone_id    = var.zone_id
  setting_id = "automatic_https_rewrites"
  value      = "off"
}

resource "cloudflare_ruleset" "compression" {
  zone_id     = var.zone_id
  name        = "default"
  description = ""
  kind        = "zone"
  phase       = "http_response_compression"
  rules = [{
    action      = "compress_response"
    expression  = "http.request.uri.path.extension eq \"css\""
    description = "Stylesheets: gzip only"
    enabled     = true
    action_parameters = {
      algorithms = [{ name = "gzip" }]
    }
  }]
}

resource "cloudflare_ruleset" "cache" {
  zone_id     = var.zone_id
  name        = "default"
  description = ""
  kind        = "zone"
  phase       = "http_request_cache_settings"
  rules = [
    {
      action = "set_cache_settings"
      action_parameters = {
        cache                = true
        respect_strong_etags = true
        edge_ttl = {
          mode    = "override_origin"
          default = 3600
          status_code_ttl = [{
            status_code_range = { from = "500", to = "599" }
            value             = -1
          }]
        }
      }
      expression  = "starts_with(http.request.uri.path, \"/static/\")"
      description = "Static files: strong ETags"
      enabled     = true
      id          = null
      ref         = "5fd1d1f7a1ab4d1f9d4d5c7e1b3a2f10"
    },
    {
      action = "set_cache_settings"
      action_parameters = {
        cache = true
        cache_key = {
          custom_key = {
            query_string = { exclude = { list = ["*"] } }
          }
        }
      }
      expression  = "http.request.uri.path eq \"/search\""
      description = "Search: one object whatever the query"
      enabled     = true
    }
  ]
}

resource "cloudflare_ruleset" "response_cache" {
  zone_id = var.zone_id
  name    = "default"
  kind    = "zone"
  phase   = "http_response_cache_settings"
  rules = [{
    action            = "set_cache_tags"
    expression        = "starts_with(http.request.uri.path, \"/blog/\")"
    description       = "Tag blog pages"
    action_parameters = { operation = "add", values = ["blog"] }
  }]
}

resource "cloudflare_page_rule" "docs" {
  zone_id  = var.zone_id
  target   = "example.com/docs/*"
  priority = 1
  status   = "active"
  actions = {
    cache_level       = "bypass"
    email_obfuscation = "off"
    always_use_https  = true
  }
}
