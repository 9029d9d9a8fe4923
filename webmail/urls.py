from django.urls import path
from django.views.generic import RedirectView

app_name = "webmail"

# The webmail views arrive with the webmail issue; until then the root leads to the admin.
urlpatterns = [
    path("", RedirectView.as_view(url="/admin/"), name="index"),
    path("login/", RedirectView.as_view(url="/admin/login/"), name="login"),
]
