from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path

from delivery.views import embedded_queue_status, mta_sts_policy
from mailhost import admin_login, wellknown
from webmail import carddav

if settings.REDIS_URL:
    queue_dashboard = include("django_rq.urls")  # the dashboard of REDIS_URL's Redis
else:
    # No Redis of ours: never django-rq's default 127.0.0.1:6379, which is somebody else's.
    embedded = [path("", admin.site.admin_view(embedded_queue_status), name="home")]
    queue_dashboard = include((embedded, "django_rq"))

urlpatterns = [
    path("admin/rq/", queue_dashboard),
    path("admin/login/", admin_login.login, name="admin_login_throttled"),
    path("admin/", admin.site.urls),
    path("", include(wellknown)),
    path(".well-known/mta-sts.txt", mta_sts_policy, name="mta_sts_policy"),
    path(".well-known/carddav", carddav.well_known, name="carddav_well_known"),
    re_path(r"^dav/.*$", carddav.dav, name="carddav"),
    path("", include("webmail.urls")),
]
