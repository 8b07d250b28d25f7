# Cloudflare provider v4: nested blocks, `rules { ... }` repeated
terraform {
  required_providers {
    cloudflare = {
      source  = "cloudflare/cloudflare"
      version = "~> 4.52"
    }
  }
}

variable "zone_id" {
  type = string
}

resource "cloudflare_zone" "example" {
  account_id = var.account_id
  zone       = "example.com"
  plan       = "business"
}

resource "cloudflare_zone_settings_override" "example" {
  zone_id = var.zone_id
  settings {
    brotli                   = "off"
    email_obfuscation        = "off"
    automatic_https_rewrites = "off"
    rocket_loader            = "off"
    always_use_https         = "on"
    browser_cache_ttl        = 14400
    minify {
      css  = "off"
      js   = "off"
      html = "off"
    }
  }
}

resource "cloudflare_ruleset" "compression" {
  zone_id     = var.zone_id
  name        = "default"
  description = ""
  kind        = "zone"
  phase       = "http_response_compression"

  rules {
    action      = "compress_response"
    expression  = "http.request.uri.path.extension eq \"css\""
    description = "Stylesheets: gzip only"
    enabled     = true
    action_parameters {
      algorithms {
        name = "gzip"
      }
    }
  }
}

resource "cloudflare_ruleset" "cache" {
  zone_id     = var.zone_id
  name        = "default"
  description = ""
  kind        = "zone"
  phase       = "http_request_cache_settings"

  rules {
    action = "set_cache_settings"
    action_parameters {
      cache                = true
      respect_strong_etags = true
      edge_ttl {
        mode    = "override_origin"
        default = 3600
        status_code_ttl {
          status_code_range {
            from = 500
            to   = 599
          }
          value = -1
        }
      }
    }
    expression  = "starts_with(http.request.uri.path, \"/static/\")"
    description = "Static files: strong ETags"
    enabled     = true
  }

  rules {
    action = "set_cache_settings"
    action_parameters {
      cache = true
      cache_key {
        ignore_query_strings_order = false
        custom_key {
          query_string {
            exclude = ["*"]
          }
        }
      }
    }
    expression  = "http.request.uri.path eq \"/search\""
    description = "Search: one object whatever the query"
    enabled     = true
  }
}

resource "cloudflare_ruleset" "config" {
  zone_id = var.zone_id
  name    = "default"
  kind    = "zone"
  phase   = "http_config_settings"

  rules {
    action = "set_config"
    action_parameters {
      email_obfuscation = false
      rocket_loader     = false
    }
    expression  = "starts_with(http.request.uri.path, \"/blog/\")"
    description = "Blog: keep the text as written"
    enabled     = true
  }

  rules {
    action = "set_config"
    action_parameters {
      rocket_loader = true
    }
    expression  = "starts_with(http.request.uri.path, \"/${var.app_prefix}/\")"
    description = "App: Rocket Loader"
    enabled     = true
  }
}

resource "cloudflare_page_rule" "legacy" {
  zone_id  = var.zone_id
  target   = "example.com/old/*"
  priority = 1
  actions {
    cache_level = "bypass"
  }
}
