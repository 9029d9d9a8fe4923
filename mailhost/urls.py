from django.contrib import admin
from django.urls import include, path

from mailhost import admin_login

urlpatterns = [
    path("admin/rq/", include("django_rq.urls")),
    path("admin/login/", admin_login.login, name="admin_login_throttled"),
    path("admin/", admin.site.urls),
    path("", include("webmail.urls")),
]
