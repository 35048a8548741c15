// A .NET (Mono) WCF client of dfdg-mock, as a STAR supplier builds one: BasicHttpBinding with
// transport security and a client certificate loaded from the welcome pack's PKCS#12 file,
// TLS 1.2, the server certificate checked by the platform against the trust store that holds
// the pack's ca.crt (cert-sync). Driven by tests/it/dotnet.rs.
//
//   mono client.exe call --base https://localhost:PORT --p12 FILE --password PW --caller ID --cvr CVR --example FILE
//       calls SaveAvailabilityAssessment and GetVariablePersonStatus (SOAP 1.1, BasicHttpBinding),
//       GetBorgerstatus (SOAP 1.2, the same transport with a SOAP 1.2 encoder), one invalid
//       request that must come back as DFDG fault 1014, and posts the pack's example request
//       for GetVariablePersonStatus by hand with "Expect: 100-continue", which must get
//       "100 Continue" before its body is sent.
//   mono client.exe open FILE PASSWORD
//       opens a PKCS#12 file as X509Certificate2 and says whether it has the private key.
//
// Prints one line per result; exits non-zero on the first failure.

using System;
using System.IO;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.ServiceModel;
using System.ServiceModel.Channels;
using System.Text;
using Star;

static class DfdgClient
{
    static int Main(string[] args)
    {
        try
        {
            if (args.Length == 3 && args[0] == "open") return Open(args[1], args[2]);
            if (args.Length > 0 && args[0] == "call") return Call(Options(args));
            Console.Error.WriteLine("usage: client.exe call --base URL --p12 FILE --password PW --caller ID --cvr CVR --example FILE | open FILE PASSWORD");
            return 2;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine("failed: " + e);
            return 1;
        }
    }

    static System.Collections.Generic.Dictionary<string, string> Options(string[] args)
    {
        var options = new System.Collections.Generic.Dictionary<string, string>();
        for (int i = 1; i + 1 < args.Length; i += 2) options[args[i].TrimStart('-')] = args[i + 1];
        foreach (var name in new[] { "base", "p12", "password", "caller", "cvr", "example" })
            if (!options.ContainsKey(name)) throw new ArgumentException("missing --" + name);
        return options;
    }

    static int Open(string file, string password)
    {
        try
        {
            var certificate = new X509Certificate2(file, password);
            Console.WriteLine("opened " + Path.GetFileName(file) + ": " + certificate.Subject + "; private key " + certificate.HasPrivateKey);
            return certificate.HasPrivateKey ? 0 : 1;
        }
        catch (Exception e)
        {
            Console.WriteLine("refused " + Path.GetFileName(file) + ": " + e.Message);
            return 1;
        }
    }

    static int Call(System.Collections.Generic.Dictionary<string, string> o)
    {
        var certificate = new X509Certificate2(o["p12"], o["password"]);
        ReportRefusals();
        // Mono stops at TLS 1.2, as .NET Framework clients often do.
        ServicePointManager.SecurityProtocol = SecurityProtocolType.Tls12;
        Console.WriteLine("client certificate " + certificate.Subject + " from " + Path.GetFileName(o["p12"]));
        Console.WriteLine("Expect: 100-continue on POST: " + ServicePointManager.Expect100Continue);

        var soap11 = new BasicHttpBinding(BasicHttpSecurityMode.Transport);
        soap11.Security.Transport.ClientCredentialType = HttpClientCredentialType.Certificate;
        var soap12 = new CustomBinding(
            new TextMessageEncodingBindingElement(MessageVersion.Soap12, Encoding.UTF8),
            new HttpsTransportBindingElement { RequireClientCertificate = true });

        var jobcenter = Channel<IJobcenterMessageService>(soap11, o["base"] + "/JobcenterMessageService/2/JobcenterMessageService.svc", certificate);
        var saved = jobcenter.SaveAvailabilityAssessment(new SaveAvailabilityAssessmentRequest
        {
            ActiveOrganisationHeader = ActiveOrganisation(o["cvr"]),
            RequestUserMetadataHeader = RequestUser(o["caller"], o["cvr"]),
            CivilRegistrationIdentifier = "0101701234",
            AvailabilityAssessmentCode = 1,
        });
        Console.WriteLine("JobcenterMessageService.SaveAvailabilityAssessment receipt " + saved.ServiceReceipt.MessageIdentifier);

        var person = Channel<IPersonStatusService>(soap11, o["base"] + "/PersonStatusService/20/PersonStatusService.svc", certificate);
        var status = person.GetVariablePersonStatus(new GetVariablePersonStatusRequest
        {
            ActiveOrganisationHeader = ActiveOrganisation(o["cvr"]),
            RequestUserMetadataHeader = RequestUser(o["caller"], o["cvr"]),
            CivilRegistrationIdentifier = "0101701234",
        });
        Console.WriteLine("PersonStatusService.GetVariablePersonStatus cpr " + status.PersonStatus.CivilRegistrationIdentifier + " log " + status.ServiceRequestLogReferenceIdentifier);

        var jobnet = Channel<IJobnetCitizenStatusService>(soap12, o["base"] + "/JobnetCitizenStatusService/10/JobnetCitizenStatusService.svc", certificate);
        var citizen = jobnet.GetBorgerstatus(new GetBorgerstatusRequest
        {
            ActiveOrganisationHeader = ActiveOrganisation(o["cvr"]),
            RequestUserMetadataHeader = RequestUser(o["caller"], o["cvr"]),
            CivilRegistrationIdentifier = "0101701234",
        });
        Console.WriteLine("JobnetCitizenStatusService.GetBorgerstatus status " + citizen.Borgerstatus.JobnetStatusCode + " log " + citizen.ServiceRequestLogReferenceIdentifier);

        try
        {
            jobcenter.SaveAvailabilityAssessment(new SaveAvailabilityAssessmentRequest
            {
                ActiveOrganisationHeader = ActiveOrganisation(o["cvr"]),
                RequestUserMetadataHeader = RequestUser(o["caller"], o["cvr"]),
                CivilRegistrationIdentifier = "12345",
                AvailabilityAssessmentCode = 1,
            });
            Console.WriteLine("an invalid CPR number was accepted");
            return 1;
        }
        catch (FaultException<FaultDetails> fault)
        {
            Console.WriteLine("fault " + fault.Detail.ErrorCode + " " + fault.Code.Name + ": " + fault.Detail.Message);
        }

        ExpectContinue(new Uri(o["base"]), certificate, File.ReadAllBytes(o["example"]));
        return 0;
    }

    static T Channel<T>(Binding binding, string address, X509Certificate2 certificate)
    {
        var factory = new ChannelFactory<T>(binding, new EndpointAddress(address));
        factory.Credentials.ClientCertificate.Certificate = certificate;
        return factory.CreateChannel();
    }

    // The platform checks the server certificate (chain to a trusted root, host name): the
    // test puts the pack's ca.crt into this user's Mono trust store with cert-sync, as a
    // supplier imports it into its certificate store. This only reports a refusal.
    static void ReportRefusals()
    {
        ServicePointManager.ServerCertificateValidationCallback = (sender, certificate, chain, errors) =>
        {
            if (errors != SslPolicyErrors.None) Console.Error.WriteLine("server certificate refused: " + errors);
            return errors == SslPolicyErrors.None;
        };
    }

    static XmlSerialized<ActiveOrganisationHeaderType> ActiveOrganisation(string cvr)
    {
        return new XmlSerialized<ActiveOrganisationHeaderType>(
            new ActiveOrganisationHeaderType { OrganisationTypeIdentifier = 24, OrganisationCode = cvr });
    }

    static XmlSerialized<RequestUserMetadataType> RequestUser(string caller, string cvr)
    {
        return new XmlSerialized<RequestUserMetadataType>(new RequestUserMetadataType
        {
            RequestUserStructure = new RequestUserStructureType
            {
                UserFullName = "Fagsystem .NET Test",
                RequestUserTypeIdentifier = new RequestUserTypeIdentifierType { CodeListItemIdentifier = 3 },
                UserIdentifier = caller,
            },
            RequestOrganisationStructure = new RequestOrganisationStructureType
            {
                OrganisationTypeIdentifier = new CodeListItemIdentifierType { CodeListItemIdentifier = 24 },
                OrganisationCode = cvr,
            },
            RegistrationDateTime = DateTime.UtcNow,
        });
    }

    // What .NET's HttpWebRequest does on every POST, by hand on Mono's TLS 1.2 stream: send the
    // headers with "Expect: 100-continue", wait for the server's "100 Continue", then send the
    // body and read the answer.
    static void ExpectContinue(Uri baseUri, X509Certificate2 certificate, byte[] body)
    {
        using (var tcp = new TcpClient(baseUri.Host, baseUri.Port))
        using (var tls = new SslStream(tcp.GetStream(), false,
            (s, c, ch, e) => ServicePointManager.ServerCertificateValidationCallback(s, c, ch, e),
            (s, host, local, remote, issuers) => certificate))
        {
            tls.ReadTimeout = 10000;
            tls.WriteTimeout = 10000;
            tls.AuthenticateAsClient(baseUri.Host, new X509CertificateCollection { certificate }, SslProtocols.Tls12, false);
            var head = "POST /PersonStatusService/20/PersonStatusService.svc HTTP/1.1\r\n"
                + "Host: " + baseUri.Authority + "\r\n"
                + "Content-Type: text/xml; charset=utf-8\r\n"
                + "SOAPAction: \"" + Ns.PersonStatus + "#GetVariablePersonStatus\"\r\n"
                + "Content-Length: " + body.Length + "\r\n"
                + "Expect: 100-continue\r\n"
                + "Connection: close\r\n\r\n";
            var bytes = Encoding.ASCII.GetBytes(head);
            tls.Write(bytes, 0, bytes.Length);
            tls.Flush();
            var interim = ReadHead(tls);
            if (!interim.StartsWith("HTTP/1.1 100 "))
                throw new Exception("expected 100 Continue before sending the body, got: " + interim);
            tls.Write(body, 0, body.Length);
            tls.Flush();
            var final = ReadHead(tls);
            Console.WriteLine("Expect: 100-continue over " + tls.SslProtocol + ": " + FirstLine(interim) + ", then " + FirstLine(final));
        }
    }

    static string ReadHead(Stream stream)
    {
        var head = new StringBuilder();
        while (!head.ToString().EndsWith("\r\n\r\n"))
        {
            var b = stream.ReadByte();
            if (b < 0) throw new Exception("connection closed after: " + head);
            head.Append((char)b);
            if (head.Length > 16384) throw new Exception("response head too long");
        }
        return head.ToString();
    }

    static string FirstLine(string head)
    {
        return head.Substring(0, head.IndexOf("\r\n"));
    }
}
